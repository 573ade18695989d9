# vmforge: topology-watchdog guard - a scheduled task that starts the watchdog in the desktop
# user's session at logon (display APIs do not work from session 0).  vmforge copies the
# watchdog script first (hash-verified); this script registers the task and reads back the
# task, the script's hash and the watchdog's heartbeat and safety-valve state.
$Guard = 'topology-watchdog'
$Mode = 'check'
$Users = @('alice', 'O''Brien')
$TaskPath = '\vmforge\'
$TaskName = 'topology-watchdog'
$ScriptPath = 'C:\ProgramData\vmforge\guards\watchdog.ps1'
$StateDir = 'C:\ProgramData\vmforge\guards\state'
$Arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -WindowStyle Hidden -File "C:\ProgramData\vmforge\guards\watchdog.ps1"'
$HeartbeatSeconds = 30
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

function Read-Task {
    $task = Get-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -ErrorAction SilentlyContinue
    if ($null -eq $task) {
        foreach ($item in 'task.registered', 'task.enabled', 'task.arguments', 'task.users') { $Answer.found[$item] = $null }
        return
    }
    $Answer.found['task.registered'] = $true
    $Answer.found['task.enabled'] = [string]$task.State -ne 'Disabled'
    $Answer.found['task.arguments'] = [string]$task.Actions[0].Arguments
    $users = @($task.Triggers | ForEach-Object { ([string]$_.UserId).Split('\')[-1] } | Sort-Object -Unique)
    $Answer.found['task.users'] = $users -join ','
}

function Read-Script {
    if (Test-Path -LiteralPath $ScriptPath) {
        $Answer.found['script.sha256'] = (Get-FileHash -LiteralPath $ScriptPath -Algorithm SHA256).Hash.ToLowerInvariant()
    } else {
        $Answer.found['script.sha256'] = $null
    }
}

function Read-State {
    $states = @(Get-ChildItem -LiteralPath $StateDir -Filter '*.json' -ErrorAction SilentlyContinue |
        ForEach-Object { Get-Content -LiteralPath $_.FullName -Raw -Encoding UTF8 | ConvertFrom-Json })
    if ($states.Count -eq 0) {
        $why = 'the watchdog has not run in a user session yet (no logon since it was installed)'
        $Answer.unknown['watchdog.alive'] = $why
        $Answer.unknown['valve.tripped'] = $why
        return
    }
    $Answer.facts['sessions'] = $states
    $newest = ($states | ForEach-Object { [DateTime]::Parse($_.heartbeat).ToUniversalTime() } | Sort-Object)[-1]
    $age = ((Get-Date).ToUniversalTime() - $newest).TotalSeconds
    $Answer.facts['heartbeat_age_seconds'] = [int]$age
    if ($age -le $HeartbeatSeconds) {
        $Answer.found['watchdog.alive'] = $true
    } else {
        $Answer.unknown['watchdog.alive'] = "last heartbeat $([int]$age) s ago (no desktop session now, or the watchdog stopped)"
    }
    $Answer.found['valve.tripped'] = @($states | Where-Object { $_.valve_tripped }).Count -gt 0
}

try {
    if ($Mode -eq 'enforce') {
        New-Item -ItemType Directory -Force -Path $StateDir | Out-Null
        & icacls.exe $StateDir /grant '*S-1-5-32-545:(OI)(CI)M' | Out-Null
        Read-Task
        $wanted = ($Users | Sort-Object -Unique) -join ','
        if ($Answer.found['task.registered'] -ne $true -or $Answer.found['task.enabled'] -ne $true -or
            $Answer.found['task.arguments'] -ne $Arguments -or $Answer.found['task.users'] -ne $wanted) {
            $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $Arguments
            $triggers = @($Users | ForEach-Object { New-ScheduledTaskTrigger -AtLogOn -User $_ })
            $principal = New-ScheduledTaskPrincipal -GroupId 'S-1-5-32-545' -RunLevel Highest
            $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -MultipleInstances IgnoreNew `
                -RestartCount 3 -RestartInterval (New-TimeSpan -Minutes 1) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
            Register-ScheduledTask -TaskPath $TaskPath -TaskName $TaskName -Action $action -Trigger $triggers `
                -Principal $principal -Settings $settings -Force | Out-Null
            Add-Changed 'task.registered'
            $Answer.facts['starts_at_next_logon'] = $true
        }
        # A tripped safety valve stays tripped until vmforge enforces again.
        foreach ($file in @(Get-ChildItem -LiteralPath $StateDir -Filter '*.json' -ErrorAction SilentlyContinue)) {
            $state = Get-Content -LiteralPath $file.FullName -Raw -Encoding UTF8 | ConvertFrom-Json
            if ($state.valve_tripped) {
                Remove-Item -LiteralPath $file.FullName -Force
                Add-Changed 'valve.tripped'
                $Answer.facts['starts_at_next_logon'] = $true
            }
        }
        $Answer.found.Clear()
    }
    Read-Task
    Read-Script
    Read-State
} catch {
    Add-GuardError $_.Exception.Message
}
Write-Answer
