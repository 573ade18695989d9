# vmforge: print a file as lines of base64, then 'sha256:' and the file's SHA-256.
# {{ path }} is rendered as a PowerShell single-quoted literal by vmforge.guest.os_windows.
$ErrorActionPreference = 'Stop'
$Path = {{ path }}
$sha = [System.Security.Cryptography.SHA256]::Create()
$stream = [System.IO.File]::OpenRead($Path)
try {
    $buffer = [byte[]]::new({{ chunk_size }})
    while (($count = $stream.Read($buffer, 0, $buffer.Length)) -gt 0) {
        $sha.TransformBlock($buffer, 0, $count, $buffer, 0) | Out-Null
        [Console]::Out.Write([System.Convert]::ToBase64String($buffer, 0, $count) + "`n")
    }
} finally {
    $stream.Dispose()
}
$sha.TransformFinalBlock([byte[]]::new(0), 0, 0) | Out-Null
[Console]::Out.Write('sha256:' + ([System.BitConverter]::ToString($sha.Hash) -replace '-', '').ToLowerInvariant())
