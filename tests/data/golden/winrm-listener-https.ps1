# vmforge: serve WinRM for vmforge on this VM (run once by the bootstrap from the answer media).
$ErrorActionPreference = 'Stop'
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Port = 5986

# The WinRM service, now and at every boot.
Set-Service -Name 'WinRM' -StartupType Automatic
Start-Service -Name 'WinRM'

# Local administrators other than the built-in one keep their full token over the network
# (otherwise UAC filters it and WinRM refuses them).
Set-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System' -Name 'LocalAccountTokenFilterPolicy' -Value 1 -Type DWord

foreach ($listener in @(Get-ChildItem -Path 'WSMan:\localhost\Listener')) {
    Remove-Item -Path $listener.PSPath -Recurse -Force
}

# The VM's own certificate (its fingerprint is pinned on the host), key not exportable.
$password = [System.IO.File]::ReadAllText((Join-Path $Here 'winrm-pfx.txt')).Trim()
$flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]'MachineKeySet,PersistKeySet'
$cert = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList @((Join-Path $Here 'winrm.pfx'), $password, $flags)
$password = $null
$store = New-Object System.Security.Cryptography.X509Certificates.X509Store -ArgumentList @('My', 'LocalMachine')
$store.Open('ReadWrite')
try { $store.Add($cert) } finally { $store.Close() }
$hostname = $cert.GetNameInfo([System.Security.Cryptography.X509Certificates.X509NameType]::SimpleName, $false)
New-Item -Path 'WSMan:\localhost\Listener' -Transport HTTPS -Address * -Port $Port -CertificateThumbPrint $cert.Thumbprint -Hostname $hostname -Force | Out-Null

Set-Item -Path 'WSMan:\localhost\Service\Auth\Negotiate' -Value $true
Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value ([bool]0)
Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value ([bool]0)

& netsh.exe advfirewall firewall delete rule name=vmforge-WinRM | Out-Null
& netsh.exe advfirewall firewall add rule name=vmforge-WinRM dir=in action=allow protocol=TCP localport=$Port profile=any | Out-Null
if ($LASTEXITCODE -ne 0) { throw ('netsh could not open TCP port ' + $Port + ' (exit ' + $LASTEXITCODE + ')') }
'https:{0} thumbprint={1}' -f $Port, $cert.Thumbprint
