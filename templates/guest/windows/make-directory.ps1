# vmforge: create a directory (and its parents) if it is missing.
$ErrorActionPreference = 'Stop'
$Path = {{ path }}
[System.IO.Directory]::CreateDirectory($Path) | Out-Null
