# vmforge: a clone's first logon - install the clone's own WinRM certificate from the clone media.
# Started from the clone media (CD labelled VMFORGE_ANSWER) by the clone's answer file; the host
# detaches the media once the clone is ready.  {{ pfx_path }} is a PowerShell single-quoted literal.
$ErrorActionPreference = 'Stop'
$PfxPath = {{ pfx_path }}
Copy-Item -LiteralPath (Join-Path $PSScriptRoot 'clone.pfx') -Destination $PfxPath -Force
& (Join-Path $PSScriptRoot 'winrm-https-listener.ps1')
