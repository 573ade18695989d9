# vmforge: the user-session half of the display guards: read the topology, and on request
# attach the IDD (for this session only) and specialize the panel.  Writes one JSON document.
# vmforge copies it into the guest once; the guard scripts start it through a scheduled task.
param(
    [Parameter(Mandatory = $true)][string]$OutFile,
    [Parameter(Mandatory = $true)][string]$IddInstance,
    [ValidateSet('read', 'attach', 'specialize')][string]$Action = 'read'
)
$ErrorActionPreference = 'Stop'
Add-Type -ReferencedAssemblies System.Windows.Forms -TypeDefinition @'
{% include "guest/windows/guards/Display.cs" %}
'@

$result = [ordered]@{ action = $Action; extend_rc = $null; specialize_calls = @(); targets = @(); error = $null }
try {
    $targets = [VmforgeGuards.Topology]::Read($IddInstance)
    if ($Action -ne 'read' -and -not [VmforgeGuards.Topology]::IddAttached($targets)) {
        $result.extend_rc = [VmforgeGuards.Topology]::ExtendForSession()
        $targets = [VmforgeGuards.Topology]::Read($IddInstance)
    }
    if ($Action -eq 'specialize') {
        # Windows will not remove its last desktop display: the IDD must be attached first.
        if ([VmforgeGuards.Topology]::IddAttached($targets)) {
            $calls = @()
            foreach ($target in $targets) {
                if (-not $target.IsIdd -and -not $target.Specialized) {
                    $rc = [VmforgeGuards.Topology]::Specialize($target, $true)
                    $calls += [ordered]@{ name = $target.FriendlyName; target_id = $target.TargetId; rc = $rc }
                }
            }
            $result.specialize_calls = $calls
            $targets = [VmforgeGuards.Topology]::Read($IddInstance)
        } else {
            $result.error = 'the IDD monitor could not be attached; the panel stays on the desktop'
        }
    }
    $result.targets = ConvertFrom-Json ([VmforgeGuards.Topology]::Json($targets))
} catch {
    $result.error = $_.Exception.Message
}
$json = ConvertTo-Json -InputObject $result -Compress -Depth 6
[IO.File]::WriteAllText("$OutFile.tmp", $json, (New-Object Text.UTF8Encoding($false)))
Move-Item -LiteralPath "$OutFile.tmp" -Destination $OutFile -Force
