# vmforge: print what a package check needs to know about this Windows guest, as one JSON line.
$ErrorActionPreference = 'Stop'
$key = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$facts = [ordered]@{
    edition_id = [string]$key.EditionID
    build = [int]$key.CurrentBuildNumber
    arch = [string]$env:PROCESSOR_ARCHITECTURE
}
[Console]::Out.Write((ConvertTo-Json -InputObject $facts -Compress))
