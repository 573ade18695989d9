# vmforge: write stdin (base64, one chunk per line) to a file, then print its SHA-256.
# {{ path }} is rendered as a PowerShell single-quoted literal by vmforge.guest.os_windows.
# The file appears under its name only when complete; the host compares the printed hash.
$ErrorActionPreference = 'Stop'
$Path = {{ path }}
$Partial = $Path + '.vmforge-part'
$Folder = [System.IO.Path]::GetDirectoryName($Path)
if ($Folder) { [System.IO.Directory]::CreateDirectory($Folder) | Out-Null }
$sha = [System.Security.Cryptography.SHA256]::Create()
$stream = [System.IO.File]::Open($Partial, [System.IO.FileMode]::Create, [System.IO.FileAccess]::Write)
try {
    while ($null -ne ($line = [Console]::In.ReadLine())) {
        if ($line.Length -eq 0) { continue }
        $bytes = [System.Convert]::FromBase64String($line)
        $stream.Write($bytes, 0, $bytes.Length)
        $sha.TransformBlock($bytes, 0, $bytes.Length, $bytes, 0) | Out-Null
    }
    $stream.Flush()
} finally {
    $stream.Dispose()
}
$sha.TransformFinalBlock([byte[]]::new(0), 0, 0) | Out-Null
Move-Item -LiteralPath $Partial -Destination $Path -Force
[Console]::Out.Write(([System.BitConverter]::ToString($sha.Hash) -replace '-', '').ToLowerInvariant())
