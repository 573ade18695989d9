# vmforge: set a local account's password, read from stdin so it never appears on a command line.
# {{ user }} is rendered as a PowerShell single-quoted literal by vmforge.guest.os_windows.
$ErrorActionPreference = 'Stop'
$User = {{ user }}
$plain = [Console]::In.ReadLine()
if ([string]::IsNullOrEmpty($plain)) { throw 'no password on stdin' }
$secure = ConvertTo-SecureString -String $plain -AsPlainText -Force
Set-LocalUser -Name $User -Password $secure
