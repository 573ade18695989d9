# vmforge: print something that changes with every boot (the last boot time, UTC, round-trip format).
$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
[Console]::Out.Write($os.LastBootUpTime.ToUniversalTime().ToString('o'))
