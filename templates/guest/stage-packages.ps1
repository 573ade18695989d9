# vmforge: stage the packages from the answer media into the guest's staging folder.
# Called by vmforge's bootstrap script at first logon:
#   stage-packages.ps1 -Source <media>\vmforge\packages -Destination C:\ProgramData\vmforge\packages
# SHA256SUMS lists "<sha256>  <package>/<path>" per file.  A file is kept only when its SHA-256
# matches; one already staged with the right hash is not copied again.  The host's packages
# step copies whatever is missing or different over the guest agent, so a failure here is
# reported but never fatal.  Windows PowerShell 2.0 and later (hashes through .NET).
param([string]$Source, [string]$Destination)
$ErrorActionPreference = 'Stop'

function Get-Sha256([string]$Path) {
    $algorithm = [System.Security.Cryptography.SHA256]::Create()
    $stream = [System.IO.File]::OpenRead($Path)
    try {
        $bytes = $algorithm.ComputeHash($stream)
    } finally {
        $stream.Close()
    }
    return ([System.BitConverter]::ToString($bytes) -replace '-', '').ToLowerInvariant()
}

$staged = 0
$kept = 0
$index = Join-Path $Source 'SHA256SUMS'
foreach ($line in [System.IO.File]::ReadAllLines($index)) {
    if ($line -notmatch '^([0-9a-f]{64})  (.+)$') { continue }
    $expected = $matches[1]
    $relative = $matches[2]
    if ($relative.StartsWith('/') -or $relative -match '(^|/)\.\.(/|$)' -or $relative.Contains(':')) {
        throw ('unsafe path in SHA256SUMS: ' + $relative)
    }
    $windowsPath = $relative.Replace('/', '\')
    $from = Join-Path $Source $windowsPath
    $to = Join-Path $Destination $windowsPath
    if ((Test-Path -LiteralPath $to) -and ((Get-Sha256 $to) -eq $expected)) {
        $kept++
        continue
    }
    $parent = Split-Path -Parent $to
    if (-not (Test-Path -LiteralPath $parent)) {
        New-Item -ItemType Directory -Path $parent -Force | Out-Null
    }
    if (Test-Path -LiteralPath $to) {
        [System.IO.File]::SetAttributes($to, [System.IO.FileAttributes]::Normal)
    }
    Copy-Item -LiteralPath $from -Destination $to -Force
    # Files copied from a CD are read-only; the packages step may replace them later.
    [System.IO.File]::SetAttributes($to, [System.IO.FileAttributes]::Normal)
    $actual = Get-Sha256 $to
    if ($actual -ne $expected) {
        Remove-Item -LiteralPath $to -Force
        throw ($relative + ': sha256 ' + $actual + ' does not match ' + $expected)
    }
    $staged++
}
Write-Output ('VMFORGE-STAGED files=' + $staged + ' kept=' + $kept)
