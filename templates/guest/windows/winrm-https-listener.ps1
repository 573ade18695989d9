# vmforge: import the VM's WinRM certificate and serve WinRM over HTTPS only (run once by the bootstrap).
# {{ pfx_path }} and {{ pfx_password }} are rendered as PowerShell single-quoted literals.
$ErrorActionPreference = 'Stop'
$PfxPath = {{ pfx_path }}
$secure = ConvertTo-SecureString -String {{ pfx_password }} -AsPlainText -Force
$cert = Import-PfxCertificate -FilePath $PfxPath -CertStoreLocation 'Cert:\LocalMachine\My' -Password $secure
Remove-Item -LiteralPath $PfxPath -Force
Enable-PSRemoting -SkipNetworkProfileCheck -Force | Out-Null
Get-ChildItem -Path 'WSMan:\localhost\Listener' | Where-Object { $_.Keys -contains 'Transport=HTTP' } | Remove-Item -Recurse -Force
Get-ChildItem -Path 'WSMan:\localhost\Listener' | Where-Object { $_.Keys -contains 'Transport=HTTPS' } | Remove-Item -Recurse -Force
New-Item -Path 'WSMan:\localhost\Listener' -Transport HTTPS -Address * -CertificateThumbPrint $cert.Thumbprint -Hostname $cert.GetNameInfo('SimpleName', $false) -Force | Out-Null
Set-Item -Path 'WSMan:\localhost\Service\Auth\Basic' -Value $false
Set-Item -Path 'WSMan:\localhost\Service\AllowUnencrypted' -Value $false
Get-NetFirewallRule -Name 'WINRM-HTTP-In-TCP*' -ErrorAction SilentlyContinue | Disable-NetFirewallRule
New-NetFirewallRule -Name 'vmforge-WinRM-HTTPS' -DisplayName 'vmforge WinRM over HTTPS' -Direction Inbound -Protocol TCP -LocalPort 5986 -Action Allow -Profile Any | Out-Null
[Console]::Out.Write($cert.Thumbprint)
