# vmforge: check that an app's services run and its scheduled tasks exist.
# services and tasks are rendered as PowerShell single-quoted literals by vmforge
# (names joined by '|').
$ErrorActionPreference = 'Stop'
$Services = @({{ services }}.Split('|') | Where-Object { $_ -ne '' })
$Tasks = @({{ tasks }}.Split('|') | Where-Object { $_ -ne '' })
$problems = @()
foreach ($name in $Services) {
    $service = Get-Service -Name $name -ErrorAction SilentlyContinue
    if ($null -eq $service) {
        $problems += "service $name is missing"
    } elseif ($service.Status -ne 'Running') {
        $problems += "service $name is $($service.Status)"
    }
}
foreach ($full in $Tasks) {
    $cut = $full.LastIndexOf('\')
    $taskPath = $full.Substring(0, $cut + 1)
    $taskName = $full.Substring($cut + 1)
    $task = Get-ScheduledTask -TaskPath $taskPath -TaskName $taskName -ErrorAction SilentlyContinue
    if ($null -eq $task) {
        $problems += "scheduled task $full is missing"
    }
}
if ($problems.Count -gt 0) {
    [Console]::Error.WriteLine(($problems -join '; '))
    exit 1
}
Write-Output "VMFORGE-OK $($Services.Count) service(s) running, $($Tasks.Count) scheduled task(s) present"
