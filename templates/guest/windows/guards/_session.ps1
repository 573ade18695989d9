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
