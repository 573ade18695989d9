# vmforge: add a driver package to the driver store and install it on matching devices.
# inf_path is rendered as a PowerShell single-quoted literal by vmforge.
$ErrorActionPreference = 'Stop'
$InfPath = {{ inf_path }}
$output = & pnputil.exe /add-driver $InfPath /install
$code = $LASTEXITCODE
$output | ForEach-Object { Write-Output "pnputil: $_" }
# 0 added, 259 nothing newer to install on any device, 3010 added but a reboot is needed.
if ($code -eq 3010) {
    Write-Output 'VMFORGE-REBOOT pnputil asks for a reboot'
} elseif ($code -ne 0 -and $code -ne 259) {
    [Console]::Error.WriteLine("pnputil /add-driver $InfPath /install exited $code")
    exit 1
}
Write-Output "VMFORGE-CHANGE pnputil /add-driver $InfPath /install (exit $code)"
