# vmforge: serve WinRM for vmforge on this VM (run once by the bootstrap from the answer media).
{# Values: https/basic/unencrypted (0 or 1), port (int), pfx_file and password_file (names of
    files next to this script on the answer media; literals).  Windows PowerShell 2.0 and later:
    .NET for the certificate import and netsh for the firewall (no PKI or NetSecurity module).
    The PFX password is read from its file here: it never appears on a command line or in this
    script's text (so not in script-block logs either). -#}
$ErrorActionPreference = 'Stop'
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Port = {{ port }}

# The WinRM service, now and at every boot.
Set-Service -Name 'WinRM' -StartupType Automatic
Start-Service -Name 'WinRM'

# Local administrators other than the built-in one keep their full token over the network
# (otherwise UAC filters it and WinRM refuses them).
Set-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System' -Name 'LocalAccountTokenFilterPolicy' -Value 1 -Type DWord

foreach ($listener in @(Get-ChildItem -Path 'WSMan:\localhost\Listener')) {
    Remove-Item -Path $listener.PSPath -Recurse -Force
}
{% if https %}

# The VM's own certificate (its fingerprint is pinned on the host), key not exportable.
$password = [System.IO.File]::ReadAllText((Join-Path $Here {{ password_file }})).Trim()
$flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]'MachineKeySet,PersistKeySet'
$cert = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList @((Join-Path $Here {{ pfx_file }}), $password, $flags)
$password = $null
$store = New-Object System.Security.Cryptography.X509Certificates.X509Store -ArgumentList @('My', 'LocalMachine')
$store.Open('ReadWrite')
try { $store.Add($cert) } finally { $store.Close() }
$hostname = $cert.GetNameInfo([System.Security.Cryptography.X509Certificates.X509NameType]::SimpleName, $false)
New-Item -Path 'WSMan:\localhost\Listener' -Transport HTTPS -Address * -Port $Port -CertificateThumbPrint $cert.Thumbprint -Hostname $hostname -Force | Out-Null
{% else %}

# Plain HTTP: allowed only because the spec says remote.allow_insecure = true.
New-Item -Path 'WSMan:\localhost\Listener' -Transport HTTP -Address * -Port $Port -Force | Out-Null
{% endif %}

Set-Item -Path 'WSMan:\localhost\Service\Auth\Negotiate' -Value $true
Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value ([bool]{{ basic }})
Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value ([bool]{{ unencrypted }})

& netsh.exe advfirewall firewall delete rule name=vmforge-WinRM | Out-Null
& netsh.exe advfirewall firewall add rule name=vmforge-WinRM dir=in action=allow protocol=TCP localport=$Port profile=any | Out-Null
if ($LASTEXITCODE -ne 0) { throw ('netsh could not open TCP port ' + $Port + ' (exit ' + $LASTEXITCODE + ')') }
{% if https %}
'https:{0} thumbprint={1}' -f $Port, $cert.Thumbprint
{% else %}
'http:{0}' -f $Port
{% endif %}
