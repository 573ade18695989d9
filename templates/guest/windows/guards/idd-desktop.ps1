# vmforge: idd-desktop guard - the indirect display (IDD) exists, works, and is part of the
# desktop.  The device is read here (session 0); the desktop only from the user's session.
# Enforce enables a disabled device and attaches its monitor for the session (never saved).
$Guard = 'idd-desktop'
$Mode = {{ mode }}
$HardwareId = {{ hardware_id }}
$Users = @({{ users }})
$SessionTimeout = {{ session_timeout }}
$SessionScript = {{ session_script }}
{% include "guest/windows/guards/_common.ps1" %}
{% include "guest/windows/guards/_session.ps1" %}

try {
    $device = Get-IddDevice $HardwareId
    if ($null -eq $device) {
        $Answer.found['device.present'] = $null
        $Answer.found['device.status'] = $null
        $Answer.found['desktop.attached'] = $null
    } else {
        $Answer.facts['instance_id'] = $device.InstanceId
        $Answer.facts['problem_code'] = $device.ConfigManagerErrorCode
        # 22: CM_PROB_DISABLED
        if ($Mode -eq 'enforce' -and $device.ConfigManagerErrorCode -eq 22) {
            Enable-PnpDevice -InstanceId $device.InstanceId -Confirm:$false
            Add-Changed 'device.status'
            $device = Get-IddDevice $HardwareId
        }
        $Answer.found['device.present'] = $true
        $Answer.found['device.status'] = [string]$device.Status
        $action = if ($Mode -eq 'enforce') { 'attach' } else { 'read' }
        $session = Invoke-UserSession $Users $action $SessionTimeout $device.InstanceId
        if ($null -eq $session) {
            $Answer.unknown['desktop.attached'] = $SessionWhy
        } elseif ($session.error) {
            $Answer.unknown['desktop.attached'] = [string]$session.error
        } else {
            $attached = @($session.targets | Where-Object { $_.idd -and $_.active }).Count -gt 0
            $Answer.found['desktop.attached'] = $attached
            $Answer.facts['targets'] = @($session.targets)
            if ($null -ne $session.extend_rc) {
                $Answer.facts['extend_rc'] = $session.extend_rc
                if ($attached) { Add-Changed 'desktop.attached' }
            }
        }
    }
} catch {
    Add-GuardError $_.Exception.Message
}
Write-Answer
