# vmforge: reboot in a few seconds, so the agent can still answer the command that asked for it.
$ErrorActionPreference = 'Stop'
& shutdown.exe /r /t {{ delay_seconds }} /c 'vmforge reboot' /d p:4:1
exit $LASTEXITCODE
