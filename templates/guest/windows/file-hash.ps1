# vmforge: print the SHA-256 of one file in the guest, lower-case hex, nothing else.
# {{ path }} is rendered as a PowerShell single-quoted literal by vmforge.guest.os_windows.
$ErrorActionPreference = 'Stop'
$Path = {{ path }}
$hash = Get-FileHash -LiteralPath $Path -Algorithm SHA256
[Console]::Out.Write($hash.Hash.ToLowerInvariant())
