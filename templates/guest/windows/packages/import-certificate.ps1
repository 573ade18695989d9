# vmforge: trust a driver signer: import a certificate into LocalMachine\TrustedPublisher.
# path and thumbprint are rendered as PowerShell single-quoted literals by vmforge.
$ErrorActionPreference = 'Stop'
$Path = {{ path }}
$Thumbprint = {{ thumbprint }}
$store = 'Cert:\LocalMachine\TrustedPublisher'
$present = Get-ChildItem -LiteralPath $store | Where-Object { $_.Thumbprint -eq $Thumbprint }
if ($present) {
    Write-Output "VMFORGE-KEPT certificate $Thumbprint already in $store"
    exit 0
}
$imported = Import-Certificate -FilePath $Path -CertStoreLocation $store
if ($imported.Thumbprint -ne $Thumbprint) {
    throw "imported certificate $($imported.Thumbprint), expected $Thumbprint"
}
Write-Output "VMFORGE-CHANGE imported certificate $Thumbprint into $store"
