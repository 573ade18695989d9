# vmforge: a clone's first logon - serve WinRM with the clone's own certificate from the clone media.
# Started from the clone media (CD labelled VMFORGE_ANSWER) by the clone's answer file; the host
# detaches the media once the clone is ready.  {{ listener }} (a PowerShell literal) names the listener script on the same
# media (winrm-listener.ps1, which reads the PFX and its password file next to itself), or is empty
# when the spec does not use WinRM.
$ErrorActionPreference = 'Stop'
$Listener = {{ listener }}
if ($Listener) {
    & (Join-Path $PSScriptRoot $Listener)
}
