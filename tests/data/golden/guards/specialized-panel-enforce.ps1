# vmforge: specialized-panel guard (experimental) - the passthrough GPU's monitor is marked
# specialized, so the compositor can own it.  Edition first: nothing changes on an edition
# without specialized displays.  Enforce attaches the IDD before the panel leaves the desktop.
$Guard = 'specialized-panel'
$Mode = 'enforce'
$HardwareId = 'Root\MttVDD'
$Users = @('alice', 'O''Brien')
$SessionTimeout = 30
$SessionScript = 'C:\ProgramData\vmforge\guards\display-session.ps1'
$Editions = @('Enterprise', 'EnterpriseN', 'EnterpriseS', 'EnterpriseSN', 'ProfessionalWorkstation', 'ProfessionalWorkstationN', 'IoTEnterprise', 'IoTEnterpriseS')
$MinimumBuild = 19041
# vmforge: helpers shared by the guard scripts (included by Jinja, never run alone).
# Every guard script prints exactly one JSON document (schema 1, vmforge/guards/model.py) and
# exits 0; what went wrong is in "errors" and "unknown", never an exception on stderr.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$Answer = [ordered]@{
    vmforge_guard = 1
    guard         = $Guard
    mode          = $Mode
    found         = [ordered]@{}
    unknown       = [ordered]@{}
    changed       = [System.Collections.ArrayList]@()
    facts         = [ordered]@{}
    errors        = [System.Collections.ArrayList]@()
}

function Write-Answer {
    [Console]::Out.Write((ConvertTo-Json -InputObject $Answer -Compress -Depth 8))
}

function Add-Changed([string]$Item) {
    [void]$Answer.changed.Add($Item)
}

function Add-GuardError([string]$Message) {
    [void]$Answer.errors.Add($Message)
}

# Registry DWORDs come back as Int32; compare them as the unsigned values the host sends.
function ConvertTo-Comparable($Value) {
    if ($Value -is [int] -and $Value -lt 0) { return [long]$Value + 4294967296 }
    return $Value
}
# vmforge: run a script in a desktop user's interactive session (included by Jinja).
# WinRM and the guest agent run in session 0, where the display APIs see no monitors: the
# script runs as a one-shot scheduled task in the session of the first logged-on desktop user.
$SessionWhy = ''

function Find-DesktopSession([string[]]$Users) {
    $owners = @()
    foreach ($process in Get-CimInstance -ClassName Win32_Process -Filter "Name = 'explorer.exe'") {
        $owner = Invoke-CimMethod -InputObject $process -MethodName GetOwner
        if ($owner.ReturnValue -eq 0) { $owners += $owner.User }
    }
    foreach ($user in $Users) {
        if ($owners -contains $user) { return $user }
    }
    return $null
}

function Invoke-UserSession([string[]]$Users, [string]$Action, [int]$TimeoutSeconds, [string]$IddInstance) {
    $user = Find-DesktopSession $Users
    if ($null -eq $user) {
        $script:SessionWhy = "no desktop session of $($Users -join ', ') is open to ask"
        return $null
    }
    $dir = Join-Path (Split-Path -Parent $SessionScript) 'session'
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    & icacls.exe $dir /grant '*S-1-5-32-545:(OI)(CI)M' | Out-Null
    $id = [guid]::NewGuid().ToString('N')
    $outPath = Join-Path $dir "$id.json"
    $taskName = "guard-session-$id"
    $arguments = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -WindowStyle Hidden -File `"$SessionScript`" -OutFile `"$outPath`" -IddInstance `"$IddInstance`" -Action $Action"
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments
    $principal = New-ScheduledTaskPrincipal -UserId $user -LogonType Interactive -RunLevel Highest
    Register-ScheduledTask -TaskName $taskName -TaskPath '\vmforge\' -Action $action -Principal $principal -Force | Out-Null
    try {
        Start-ScheduledTask -TaskName $taskName -TaskPath '\vmforge\'
        $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
        while (-not (Test-Path -LiteralPath $outPath) -and (Get-Date) -lt $deadline) {
            Start-Sleep -Milliseconds 250
        }
        if (-not (Test-Path -LiteralPath $outPath)) {
            $script:SessionWhy = "the session of $user did not answer within $TimeoutSeconds s"
            return $null
        }
        return (Get-Content -LiteralPath $outPath -Raw -Encoding UTF8 | ConvertFrom-Json)
    } finally {
        Unregister-ScheduledTask -TaskName $taskName -TaskPath '\vmforge\' -Confirm:$false -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $outPath -Force -ErrorAction SilentlyContinue
    }
}

function Get-IddDevice([string]$HardwareId) {
    $devices = @(Get-PnpDevice -Class Display -ErrorAction SilentlyContinue |
        Where-Object { $_.HardwareID -contains $HardwareId })
    if ($devices.Count -eq 0) { return $null }
    return $devices[0]
}

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
