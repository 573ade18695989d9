# vmforge: delete the copies of the answer file Windows Setup keeps; report each as removed or left.
{# The bootstrap deletes them too; the host runs this after post-install to prove they are gone.
   Output: one line per copy found, 'removed PATH' or 'left PATH' (PowerShell 2.0 has no JSON). -#}
$ErrorActionPreference = 'Stop'
$Copies = @(
    (Join-Path $env:SystemRoot 'Panther\unattend.xml'),
    (Join-Path $env:SystemRoot 'Panther\Unattend\unattend.xml')
)
foreach ($copy in $Copies) {
    if (-not (Test-Path -LiteralPath $copy)) { continue }
    Remove-Item -LiteralPath $copy -Force -ErrorAction SilentlyContinue
    if (Test-Path -LiteralPath $copy) { 'left ' + $copy } else { 'removed ' + $copy }
}
