# vmforge: power off in a few seconds, so the agent can still answer the command that asked for it.
$ErrorActionPreference = 'Stop'
& shutdown.exe /s /t {{ delay_seconds }} /c 'vmforge shutdown' /d p:4:1
exit $LASTEXITCODE
