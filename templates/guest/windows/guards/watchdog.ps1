# vmforge: the topology watchdog, started at logon in the desktop user's session by the
# scheduled task \vmforge\topology-watchdog.  Re-asserts the intended topology after each
# WM_DISPLAYCHANGE (debounced) and on a timer; never saves it to the display database; after
# repeated failures the safety valve gives the panel back to the desktop and stops.
$ErrorActionPreference = 'Stop'
$IddHardwareId = {{ hardware_id }}
$SpecializePanel = {{ specialize_panel }}
$DebounceMs = {{ debounce_ms }}
$IntervalSeconds = {{ interval_seconds }}
$MaxFailures = {{ max_failures }}
$StateDir = {{ state_dir }}
Add-Type -ReferencedAssemblies System.Windows.Forms -TypeDefinition @'
{% include "guest/windows/guards/Display.cs" %}
'@

$mutex = New-Object System.Threading.Mutex($false, 'Local\vmforge-topology-watchdog')
if (-not $mutex.WaitOne(0)) { exit 0 }
New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
$statePath = Join-Path $StateDir "$env:USERNAME.json"
$logPath = Join-Path $StateDir "$env:USERNAME.log"
$device = @(Get-PnpDevice -Class Display -ErrorAction SilentlyContinue |
    Where-Object { $_.HardwareID -contains $IddHardwareId })
$iddInstance = if ($device.Count -gt 0) { $device[0].InstanceId } else { '' }
$watchdog = New-Object VmforgeGuards.Watchdog($iddInstance, $SpecializePanel, $DebounceMs, $IntervalSeconds,
    $MaxFailures, $statePath, $logPath)
[System.Windows.Forms.Application]::Run($watchdog)
