# vmforge: idd-desktop guard - the indirect display (IDD) exists, works, and is part of the
# desktop.  The device is read here (session 0); the desktop only from the user's session.
# Enforce enables a disabled device and attaches its monitor for the session (never saved).
$Guard = 'idd-desktop'
$Mode = 'enforce'
$HardwareId = 'Root\MttVDD'
$Users = @('alice', 'O''Brien')
$SessionTimeout = 30
$SessionScript = 'C:\ProgramData\vmforge\guards\display-session.ps1'
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
