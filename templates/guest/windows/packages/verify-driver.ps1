# vmforge: check that a device with the hardware id exists and Windows reports it working.
# hardware_id is rendered as a PowerShell single-quoted literal by vmforge.
$ErrorActionPreference = 'Stop'
$HardwareId = {{ hardware_id }}
$devices = @(Get-PnpDevice -PresentOnly -ErrorAction SilentlyContinue | Where-Object {
    @($_.HardwareID | Where-Object { $_ -eq $HardwareId -or $_.StartsWith($HardwareId + '&') }).Count -gt 0
})
if ($devices.Count -eq 0) {
    [Console]::Error.WriteLine("no present device has hardware id $HardwareId")
    exit 1
}
$bad = @($devices | Where-Object { $_.Status -ne 'OK' })
if ($bad.Count -gt 0) {
    [Console]::Error.WriteLine("device $($bad[0].InstanceId) ($HardwareId) has status $($bad[0].Status), problem $($bad[0].Problem)")
    exit 1
}
Write-Output "VMFORGE-OK $($devices.Count) device(s) with hardware id $HardwareId, status OK"
