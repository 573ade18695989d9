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
