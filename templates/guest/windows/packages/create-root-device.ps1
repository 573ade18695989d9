# vmforge: create a root-enumerated device node for a hardware id and bind the INF's driver to it.
# SetupAPI through P/Invoke (no devcon or nefcon): SetupDiCreateDeviceInfo,
# SetupDiSetDeviceRegistryProperty(SPDRP_HARDWAREID), SetupDiCallClassInstaller(DIF_REGISTERDEVICE),
# then UpdateDriverForPlugAndPlayDevices.  Nothing happens when such a device already exists.
# inf_path and hardware_id are rendered as PowerShell single-quoted literals by vmforge.
$ErrorActionPreference = 'Stop'
$InfPath = {{ inf_path }}
$HardwareId = {{ hardware_id }}

$existing = @(Get-PnpDevice -ErrorAction SilentlyContinue | Where-Object { $_.HardwareID -contains $HardwareId })
if ($existing.Count -gt 0) {
    Write-Output "VMFORGE-KEPT device $($existing[0].InstanceId) already has hardware id $HardwareId"
    exit 0
}

Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
using System.Text;

public static class VmforgeSetupApi
{
    [StructLayout(LayoutKind.Sequential)]
    public struct SP_DEVINFO_DATA
    {
        public uint cbSize;
        public Guid ClassGuid;
        public uint DevInst;
        public IntPtr Reserved;
    }

    public const uint DICD_GENERATE_ID = 0x1;
    public const uint SPDRP_HARDWAREID = 0x1;
    public const uint DIF_REGISTERDEVICE = 0x19;
    public const uint INSTALLFLAG_FORCE = 0x1;

    [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    public static extern bool SetupDiGetINFClassW(string infName, out Guid classGuid,
        StringBuilder className, uint classNameSize, out uint requiredSize);

    [DllImport("setupapi.dll", SetLastError = true)]
    public static extern IntPtr SetupDiCreateDeviceInfoList(ref Guid classGuid, IntPtr hwndParent);

    [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    public static extern bool SetupDiCreateDeviceInfoW(IntPtr deviceInfoSet, string deviceName,
        ref Guid classGuid, string deviceDescription, IntPtr hwndParent, uint creationFlags,
        ref SP_DEVINFO_DATA deviceInfoData);

    [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    public static extern bool SetupDiSetDeviceRegistryPropertyW(IntPtr deviceInfoSet,
        ref SP_DEVINFO_DATA deviceInfoData, uint property, byte[] propertyBuffer, uint propertyBufferSize);

    [DllImport("setupapi.dll", SetLastError = true)]
    public static extern bool SetupDiCallClassInstaller(uint installFunction, IntPtr deviceInfoSet,
        ref SP_DEVINFO_DATA deviceInfoData);

    [DllImport("setupapi.dll", SetLastError = true)]
    public static extern bool SetupDiDestroyDeviceInfoList(IntPtr deviceInfoSet);

    [DllImport("newdev.dll", SetLastError = true, CharSet = CharSet.Unicode)]
    public static extern bool UpdateDriverForPlugAndPlayDevicesW(IntPtr hwndParent, string hardwareId,
        string fullInfPath, uint installFlags, out bool rebootRequired);

    static void Check(bool ok, string what)
    {
        if (!ok) { throw new System.ComponentModel.Win32Exception(Marshal.GetLastWin32Error(), what + " failed"); }
    }

    public static bool CreateRootDevice(string infPath, string hardwareId)
    {
        Guid classGuid;
        uint required;
        StringBuilder className = new StringBuilder(256);
        Check(SetupDiGetINFClassW(infPath, out classGuid, className, 256, out required), "SetupDiGetINFClass");
        IntPtr set = SetupDiCreateDeviceInfoList(ref classGuid, IntPtr.Zero);
        if (set == new IntPtr(-1)) { Check(false, "SetupDiCreateDeviceInfoList"); }
        try
        {
            SP_DEVINFO_DATA data = new SP_DEVINFO_DATA();
            data.cbSize = (uint)Marshal.SizeOf(typeof(SP_DEVINFO_DATA));
            Check(SetupDiCreateDeviceInfoW(set, className.ToString(), ref classGuid, null, IntPtr.Zero,
                DICD_GENERATE_ID, ref data), "SetupDiCreateDeviceInfo");
            byte[] ids = Encoding.Unicode.GetBytes(hardwareId + "\0\0");
            Check(SetupDiSetDeviceRegistryPropertyW(set, ref data, SPDRP_HARDWAREID, ids, (uint)ids.Length),
                "SetupDiSetDeviceRegistryProperty(SPDRP_HARDWAREID)");
            Check(SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, ref data),
                "SetupDiCallClassInstaller(DIF_REGISTERDEVICE)");
        }
        finally
        {
            SetupDiDestroyDeviceInfoList(set);
        }
        bool reboot;
        Check(UpdateDriverForPlugAndPlayDevicesW(IntPtr.Zero, hardwareId, infPath, INSTALLFLAG_FORCE, out reboot),
            "UpdateDriverForPlugAndPlayDevices");
        return reboot;
    }
}
'@

$fullInf = (Resolve-Path -LiteralPath $InfPath).ProviderPath
$reboot = [VmforgeSetupApi]::CreateRootDevice($fullInf, $HardwareId)
Write-Output "VMFORGE-CHANGE created root device $HardwareId and installed $fullInf on it"
if ($reboot) {
    Write-Output 'VMFORGE-REBOOT UpdateDriverForPlugAndPlayDevices asks for a reboot'
}
