# vmforge: generalize this Windows for a golden image, then shut down.
# 1. Per-user provisioned appx packages (installed for a user, not provisioned for all) make
#    sysprep stop with "SYSPRP Package ... was installed for a user, but not provisioned for all
#    users"; remove them for every user first.
# 2. sysprep /generalize /oobe /shutdown with vmforge's own answer file (PersistAllDeviceInstalls
#    keeps the virtio drivers through the generalize pass).
$ErrorActionPreference = 'Stop'
$provisioned = @(Get-AppxProvisionedPackage -Online | ForEach-Object { $_.PackageName })
Get-AppxPackage -AllUsers |
    Where-Object { -not $_.NonRemovable -and $_.SignatureKind -ne 'System' -and ($provisioned -notcontains $_.PackageFullName) } |
    ForEach-Object {
        try { Remove-AppxPackage -Package $_.PackageFullName -AllUsers -ErrorAction Stop }
        catch { Write-Output ('vmforge: could not remove {0}: {1}' -f $_.PackageFullName, $_.Exception.Message) }
    }
$sysprep = Join-Path $env:SystemRoot 'System32\Sysprep\sysprep.exe'
$unattend = {{ unattend_path }}
$process = Start-Process -FilePath $sysprep -ArgumentList @('/generalize', '/oobe', '/shutdown', '/quiet', "/unattend:$unattend") -PassThru -Wait
exit $process.ExitCode
