# vmforge: specialized-panel guard (experimental) - the passthrough GPU's monitor is marked
# specialized, so the compositor can own it.  Edition first: nothing changes on an edition
# without specialized displays.  Enforce attaches the IDD before the panel leaves the desktop.
$Guard = 'specialized-panel'
$Mode = {{ mode }}
$HardwareId = {{ hardware_id }}
$Users = @({{ users }})
$SessionTimeout = {{ session_timeout }}
$SessionScript = {{ session_script }}
$Editions = @({{ editions }})
$MinimumBuild = {{ minimum_build }}
{% include "guest/windows/guards/_common.ps1" %}
{% include "guest/windows/guards/_session.ps1" %}

try {
    $version = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    $Answer.found['edition'] = [string]$version.EditionID
    $Answer.found['build'] = [int]$version.CurrentBuildNumber
    $supported = ($Editions -contains $version.EditionID) -and ([int]$version.CurrentBuildNumber -ge $MinimumBuild)
    $device = Get-IddDevice $HardwareId
    if (-not $supported) {
        Add-GuardError "edition $($version.EditionID) build $($version.CurrentBuildNumber) has no specialized displays"
        foreach ($item in 'idd.attached', 'panel.present', 'panel.specialized') {
            $Answer.unknown[$item] = 'not read: the edition has no specialized displays'
        }
    } elseif ($null -eq $device) {
        $Answer.found['idd.attached'] = $null
        foreach ($item in 'panel.present', 'panel.specialized') {
            $Answer.unknown[$item] = 'not read: no IDD device, so the panel must stay on the desktop'
        }
    } else {
        $action = if ($Mode -eq 'enforce') { 'specialize' } else { 'read' }
        $session = Invoke-UserSession $Users $action $SessionTimeout $device.InstanceId
        if ($null -eq $session -or $session.error -and $null -eq $session.targets) {
            $why = if ($null -eq $session) { $SessionWhy } else { [string]$session.error }
            foreach ($item in 'idd.attached', 'panel.present', 'panel.specialized') { $Answer.unknown[$item] = $why }
        } else {
            $targets = @($session.targets)
            $panels = @($targets | Where-Object { -not $_.idd })
            $Answer.facts['targets'] = $targets
            $Answer.facts['specialize_calls'] = @($session.specialize_calls)
            if ($session.error) { Add-GuardError ([string]$session.error) }
            $Answer.found['idd.attached'] = @($targets | Where-Object { $_.idd -and $_.active }).Count -gt 0
            if ($panels.Count -eq 0) {
                $Answer.found['panel.present'] = $null
                $Answer.found['panel.specialized'] = $null
            } else {
                $Answer.found['panel.present'] = $true
                $Answer.found['panel.specialized'] = @($panels | Where-Object { -not $_.specialized }).Count -eq 0
                foreach ($call in @($session.specialize_calls)) {
                    if ($call.rc -eq 0) { Add-Changed 'panel.specialized' }
                }
            }
        }
    }
} catch {
    Add-GuardError $_.Exception.Message
}
Write-Answer
