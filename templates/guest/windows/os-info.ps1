# vmforge: describe the operating system as one line of JSON.
$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$info = [ordered]@{
    id             = 'mswindows'
    name           = [string]$os.Caption
    version        = [string]$os.Version
    kernel_release = [string]$os.BuildNumber
    machine        = [string]$env:PROCESSOR_ARCHITECTURE
}
[Console]::Out.Write((ConvertTo-Json -InputObject $info -Compress))
