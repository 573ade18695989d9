# vmforge: policies guard - read back (check) or write then read back (enforce) the policies
# that hide the display settings: user scope for each desktop user and the default profile
# (through the user's registry hive), machine scope under HKLM.
$Guard = 'policies'
$Mode = 'enforce'
$Users = @('alice', 'O''Brien')
$DefaultProfile = $true
$Policies = @(
    [ordered]@{ Scope = 'user'; Key = 'Software\Microsoft\Windows\CurrentVersion\Policies\System'; Name = 'NoDispCPL'; Kind = 'dword'; Value = 1; Id = 'Software\Microsoft\Windows\CurrentVersion\Policies\System\NoDispCPL' }
    [ordered]@{ Scope = 'user'; Key = 'Software\Microsoft\Windows\CurrentVersion\Policies\System'; Name = 'NoDispSettingsPage'; Kind = 'dword'; Value = 1; Id = 'Software\Microsoft\Windows\CurrentVersion\Policies\System\NoDispSettingsPage' }
    [ordered]@{ Scope = 'machine'; Key = 'SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer'; Name = 'SettingsPageVisibility'; Kind = 'string'; Value = 'hide:display'; Id = 'SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\Explorer\SettingsPageVisibility' }
    [ordered]@{ Scope = 'user'; Key = 'Software\Policies\Microsoft\Windows\Explorer'; Name = 'NoNotificationCenter'; Kind = 'dword'; Value = 1; Id = 'Software\Policies\Microsoft\Windows\Explorer\NoNotificationCenter' }
    [ordered]@{ Scope = 'machine'; Key = 'SOFTWARE\Policies\vmforge'; Name = 'Note'; Kind = 'string'; Value = '$(Remove-Item C:\ -Recurse)''`n’’'; Id = 'SOFTWARE\Policies\vmforge\Note' }
    [ordered]@{ Scope = 'machine'; Key = 'SOFTWARE\Policies\vmforge'; Name = 'Big'; Kind = 'dword'; Value = 4294967295; Id = 'SOFTWARE\Policies\vmforge\Big' }
)
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

function Get-PolicyValue([string]$Path, [string]$Name) {
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $item = Get-ItemProperty -LiteralPath $Path -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return (ConvertTo-Comparable $item.$Name)
}

function Set-PolicyValue([string]$Path, [string]$Name, [string]$Kind, $Value) {
    if (-not (Test-Path -LiteralPath $Path)) { New-Item -Path $Path -Force | Out-Null }
    if ($Kind -eq 'dword') {
        $data = [BitConverter]::ToInt32([BitConverter]::GetBytes([uint32]$Value), 0)
        New-ItemProperty -LiteralPath $Path -Name $Name -PropertyType DWord -Value $data -Force | Out-Null
    } else {
        New-ItemProperty -LiteralPath $Path -Name $Name -PropertyType String -Value ([string]$Value) -Force | Out-Null
    }
}

function Sync-Policies([string]$Root, [string]$Scope, [string]$Label) {
    foreach ($policy in $Policies) {
        if ($policy.Scope -ne $Scope) { continue }
        $item = if ($Scope -eq 'user') { "user[$Label]:$($policy.Id)" } else { "machine:$($policy.Id)" }
        $path = Join-Path $Root $policy.Key
        try {
            $current = Get-PolicyValue $path $policy.Name
            if ($Mode -eq 'enforce' -and $current -ne $policy.Value) {
                Set-PolicyValue $path $policy.Name $policy.Kind $policy.Value
                Add-Changed $item
                $current = Get-PolicyValue $path $policy.Name
            }
            $Answer.found[$item] = $current
        } catch {
            $Answer.unknown[$item] = $_.Exception.Message
        }
    }
}

# Run $Action against a user's hive: the loaded one while the user is logged on, else the
# profile's NTUSER.DAT loaded under a temporary name and unloaded again.
function Invoke-WithHive([string]$HivePath, [string]$Sid, [string]$Label) {
    if ($Sid -and (Test-Path -LiteralPath "Registry::HKEY_USERS\$Sid")) {
        Sync-Policies "Registry::HKEY_USERS\$Sid" 'user' $Label
        return
    }
    $mount = "vmforge-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    & reg.exe load "HKU\$mount" $HivePath | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "reg load $HivePath failed ($LASTEXITCODE)" }
    try {
        Sync-Policies "Registry::HKEY_USERS\$mount" 'user' $Label
    } finally {
        [GC]::Collect()
        [GC]::WaitForPendingFinalizers()
        & reg.exe unload "HKU\$mount" | Out-Null
    }
}

function Set-UserUnknown([string]$Label, [string]$Why) {
    foreach ($policy in $Policies) {
        if ($policy.Scope -eq 'user') { $Answer.unknown["user[$Label]:$($policy.Id)"] = $Why }
    }
}

try {
    $Answer.facts['no_profile'] = [System.Collections.ArrayList]@()
    foreach ($user in $Users) {
        try {
            $sid = (New-Object System.Security.Principal.NTAccount($user)).Translate(
                [System.Security.Principal.SecurityIdentifier]).Value
        } catch {
            Add-GuardError "no account '$user' in the guest"
            foreach ($policy in $Policies) {
                if ($policy.Scope -eq 'user') { $Answer.found["user[$user]:$($policy.Id)"] = $null }
            }
            continue
        }
        $profileKey = "HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList\$sid"
        $profilePath = (Get-ItemProperty -LiteralPath $profileKey -ErrorAction SilentlyContinue).ProfileImagePath
        if (-not $profilePath) {
            # Never logged on: the default profile's values become theirs at first logon.
            [void]$Answer.facts['no_profile'].Add($user)
            foreach ($policy in $Policies) {
                if ($policy.Scope -eq 'user') { $Answer.found["user[$user]:$($policy.Id)"] = $null }
            }
            continue
        }
        try {
            Invoke-WithHive (Join-Path $profilePath 'NTUSER.DAT') $sid $user
        } catch {
            Set-UserUnknown $user $_.Exception.Message
        }
    }
    if ($DefaultProfile) {
        $defaultDir = (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList').Default
        try {
            Invoke-WithHive (Join-Path $defaultDir 'NTUSER.DAT') '' '.default'
        } catch {
            Set-UserUnknown '.default' $_.Exception.Message
        }
    }
    Sync-Policies 'HKLM:\' 'machine' ''
} catch {
    Add-GuardError $_.Exception.Message
}
Write-Answer
