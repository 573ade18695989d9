// vmforge: display topology helpers for the guards (compiled in the guest by Add-Type).
// Runs only in an interactive user session: the display configuration APIs see nothing from
// session 0, where WinRM and the guest agent live.
using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Windows.Forms;

namespace VmforgeGuards
{
    [StructLayout(LayoutKind.Sequential)]
    public struct Luid
    {
        public uint LowPart;
        public int HighPart;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PathSourceInfo
    {
        public Luid AdapterId;
        public uint Id;
        public uint ModeInfoIdx;
        public uint StatusFlags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PathTargetInfo
    {
        public Luid AdapterId;
        public uint Id;
        public uint ModeInfoIdx;
        public int OutputTechnology;
        public int Rotation;
        public int Scaling;
        public uint RefreshNumerator;
        public uint RefreshDenominator;
        public int ScanLineOrdering;
        public int TargetAvailable;
        public uint StatusFlags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PathInfo
    {
        public PathSourceInfo Source;
        public PathTargetInfo Target;
        public uint Flags;
    }

    // DISPLAYCONFIG_MODE_INFO: the 48-byte union is kept opaque; vmforge only passes modes back.
    [StructLayout(LayoutKind.Sequential)]
    public struct ModeInfo
    {
        public int InfoType;
        public uint Id;
        public Luid AdapterId;
        public ulong U0, U1, U2, U3, U4, U5;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct DeviceInfoHeader
    {
        public int Type;
        public uint Size;
        public Luid AdapterId;
        public uint Id;
    }

    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct TargetDeviceName
    {
        public DeviceInfoHeader Header;
        public uint Flags;
        public int OutputTechnology;
        public ushort EdidManufactureId;
        public ushort EdidProductCodeId;
        public uint ConnectorInstance;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 64)] public string MonitorFriendlyDeviceName;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string MonitorDevicePath;
    }

    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct AdapterName
    {
        public DeviceInfoHeader Header;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string AdapterDevicePath;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct GetMonitorSpecialization
    {
        public DeviceInfoHeader Header;
        public uint Value; // bit 0 enabled, bit 1 available for monitor, bit 2 available for system
    }

    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct SetMonitorSpecialization
    {
        public DeviceInfoHeader Header;
        public uint Value; // bit 0 enabled
        public Guid SpecializationType;
        public Guid SpecializationSubType;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 128)] public string SpecializationApplicationName;
    }

    public static class Native
    {
        public const uint QDC_ALL_PATHS = 0x1;
        public const uint QDC_ONLY_ACTIVE_PATHS = 0x2;
        public const uint SDC_TOPOLOGY_EXTEND = 0x4;
        public const uint SDC_APPLY = 0x80;
        // SDC_SAVE_TO_DATABASE (0x200) is deliberately absent: the guards re-assert the topology at
        // run time and never persist it (an IDD-only topology in the database can hang boot).
        public const uint DISPLAYCONFIG_PATH_ACTIVE = 0x1;
        public const int GET_TARGET_NAME = 2;
        public const int GET_ADAPTER_NAME = 4;
        public const int GET_MONITOR_SPECIALIZATION = 12;
        public const int SET_MONITOR_SPECIALIZATION = 13;

        [DllImport("user32.dll")]
        public static extern int GetDisplayConfigBufferSizes(uint flags, out uint numPaths, out uint numModes);

        [DllImport("user32.dll")]
        public static extern int QueryDisplayConfig(uint flags, ref uint numPaths, [Out] PathInfo[] paths,
            ref uint numModes, [Out] ModeInfo[] modes, IntPtr currentTopologyId);

        [DllImport("user32.dll")]
        public static extern int SetDisplayConfig(uint numPaths, PathInfo[] paths, uint numModes, ModeInfo[] modes,
            uint flags);

        [DllImport("user32.dll")]
        public static extern int DisplayConfigGetDeviceInfo(ref TargetDeviceName request);

        [DllImport("user32.dll")]
        public static extern int DisplayConfigGetDeviceInfo(ref AdapterName request);

        [DllImport("user32.dll")]
        public static extern int DisplayConfigGetDeviceInfo(ref GetMonitorSpecialization request);

        [DllImport("user32.dll")]
        public static extern int DisplayConfigSetDeviceInfo(ref SetMonitorSpecialization request);
    }

    public class Target
    {
        public Luid AdapterId;
        public uint TargetId;
        public string AdapterPath = "";
        public string MonitorPath = "";
        public string FriendlyName = "";
        public bool Active;
        public bool IsIdd;
        public bool Specialized;
        public bool SpecializationAvailable;
        public int SpecializationQueryRc;
    }

    public static class Topology
    {
        // A vmforge-chosen type for the specialization; Windows only asks that it be stable.
        public static readonly Guid SpecializationType = new Guid("6f1b5d0c-3c1e-4a57-9d0e-7a6d6a0f6d21");

        // iddInstance: the IDD's PnP instance id (ROOT\DISPLAY\0000); adapter paths spell it
        // with '#' (\\?\ROOT#DISPLAY#0000#{guid}).
        public static List<Target> Read(string iddInstance)
        {
            string marker = iddInstance.Replace('\\', '#').ToUpperInvariant();
            uint numPaths, numModes;
            int rc = Native.GetDisplayConfigBufferSizes(Native.QDC_ALL_PATHS, out numPaths, out numModes);
            if (rc != 0) throw new InvalidOperationException("GetDisplayConfigBufferSizes failed: " + rc);
            PathInfo[] paths = new PathInfo[numPaths];
            ModeInfo[] modes = new ModeInfo[numModes];
            rc = Native.QueryDisplayConfig(Native.QDC_ALL_PATHS, ref numPaths, paths, ref numModes, modes, IntPtr.Zero);
            if (rc != 0) throw new InvalidOperationException("QueryDisplayConfig failed: " + rc);
            Dictionary<string, Target> targets = new Dictionary<string, Target>();
            for (int i = 0; i < numPaths; i++)
            {
                PathInfo path = paths[i];
                if (path.Target.TargetAvailable == 0) continue;
                string key = path.Target.AdapterId.HighPart + ":" + path.Target.AdapterId.LowPart + ":" + path.Target.Id;
                Target target;
                if (!targets.TryGetValue(key, out target))
                {
                    target = Describe(path.Target.AdapterId, path.Target.Id, marker);
                    targets[key] = target;
                }
                if ((path.Flags & Native.DISPLAYCONFIG_PATH_ACTIVE) != 0) target.Active = true;
            }
            return new List<Target>(targets.Values);
        }

        static Target Describe(Luid adapter, uint targetId, string marker)
        {
            Target target = new Target();
            target.AdapterId = adapter;
            target.TargetId = targetId;
            TargetDeviceName name = new TargetDeviceName();
            name.Header = Header(Native.GET_TARGET_NAME, Marshal.SizeOf(typeof(TargetDeviceName)), adapter, targetId);
            if (Native.DisplayConfigGetDeviceInfo(ref name) == 0)
            {
                target.MonitorPath = name.MonitorDevicePath ?? "";
                target.FriendlyName = name.MonitorFriendlyDeviceName ?? "";
            }
            AdapterName adapterName = new AdapterName();
            adapterName.Header = Header(Native.GET_ADAPTER_NAME, Marshal.SizeOf(typeof(AdapterName)), adapter, 0);
            if (Native.DisplayConfigGetDeviceInfo(ref adapterName) == 0)
            {
                target.AdapterPath = adapterName.AdapterDevicePath ?? "";
            }
            target.IsIdd = marker.Length > 0 && target.AdapterPath.ToUpperInvariant().Contains(marker);
            GetMonitorSpecialization spec = new GetMonitorSpecialization();
            spec.Header = Header(Native.GET_MONITOR_SPECIALIZATION, Marshal.SizeOf(typeof(GetMonitorSpecialization)),
                adapter, targetId);
            target.SpecializationQueryRc = Native.DisplayConfigGetDeviceInfo(ref spec);
            if (target.SpecializationQueryRc == 0)
            {
                target.Specialized = (spec.Value & 0x1) != 0;
                target.SpecializationAvailable = (spec.Value & 0x2) != 0 && (spec.Value & 0x4) != 0;
            }
            return target;
        }

        static DeviceInfoHeader Header(int type, int size, Luid adapter, uint id)
        {
            DeviceInfoHeader header = new DeviceInfoHeader();
            header.Type = type;
            header.Size = (uint)size;
            header.AdapterId = adapter;
            header.Id = id;
            return header;
        }

        public static bool IddAttached(List<Target> targets)
        {
            foreach (Target t in targets)
            {
                if (t.IsIdd && t.Active) return true;
            }
            return false;
        }

        // Extend the desktop over every connected display, for this session only (not saved).
        public static int ExtendForSession()
        {
            return Native.SetDisplayConfig(0, null, 0, null, Native.SDC_APPLY | Native.SDC_TOPOLOGY_EXTEND);
        }

        // The documented specialization call; returns the Win32 error code (0 = accepted).
        public static int Specialize(Target target, bool enable)
        {
            SetMonitorSpecialization request = new SetMonitorSpecialization();
            request.Header = Header(Native.SET_MONITOR_SPECIALIZATION,
                Marshal.SizeOf(typeof(SetMonitorSpecialization)), target.AdapterId, target.TargetId);
            request.Value = enable ? 1u : 0u;
            request.SpecializationType = SpecializationType;
            request.SpecializationSubType = Guid.Empty;
            request.SpecializationApplicationName = "vmforge compositor";
            return Native.DisplayConfigSetDeviceInfo(ref request);
        }

        public static string Json(List<Target> targets)
        {
            StringBuilder text = new StringBuilder("[");
            for (int i = 0; i < targets.Count; i++)
            {
                Target t = targets[i];
                if (i > 0) text.Append(',');
                text.Append("{\"target_id\":").Append(t.TargetId)
                    .Append(",\"adapter_path\":").Append(Quote(t.AdapterPath))
                    .Append(",\"monitor_path\":").Append(Quote(t.MonitorPath))
                    .Append(",\"name\":").Append(Quote(t.FriendlyName))
                    .Append(",\"active\":").Append(t.Active ? "true" : "false")
                    .Append(",\"idd\":").Append(t.IsIdd ? "true" : "false")
                    .Append(",\"specialized\":").Append(t.Specialized ? "true" : "false")
                    .Append(",\"specialization_available\":").Append(t.SpecializationAvailable ? "true" : "false")
                    .Append(",\"specialization_query_rc\":").Append(t.SpecializationQueryRc)
                    .Append('}');
            }
            return text.Append(']').ToString();
        }

        public static string Quote(string value)
        {
            StringBuilder text = new StringBuilder("\"");
            foreach (char c in value ?? "")
            {
                if (c == '"' || c == '\\') text.Append('\\').Append(c);
                else if (c < ' ') text.Append("\\u").Append(((int)c).ToString("x4"));
                else text.Append(c);
            }
            return text.Append('"').ToString();
        }
    }

    // The topology watchdog: a hidden window that hears WM_DISPLAYCHANGE, waits for the changes
    // to settle (debounce), then re-asserts the intended topology; a periodic timer re-checks too.
    public class Watchdog : Form
    {
        const int WM_DISPLAYCHANGE = 0x007E;
        readonly string iddInstance;
        readonly bool specializePanel;
        readonly int maxFailures;
        readonly string statePath;
        readonly string logPath;
        readonly Timer debounce = new Timer();
        readonly Timer periodic = new Timer();
        int failures;
        bool valveTripped;
        string lastError = "";

        public Watchdog(string iddInstance, bool specializePanel, int debounceMs, int intervalSeconds,
            int maxFailures, string statePath, string logPath)
        {
            this.iddInstance = iddInstance;
            this.specializePanel = specializePanel;
            this.maxFailures = maxFailures;
            this.statePath = statePath;
            this.logPath = logPath;
            ShowInTaskbar = false;
            WindowState = FormWindowState.Minimized;
            Opacity = 0;
            debounce.Interval = debounceMs;
            debounce.Tick += delegate { debounce.Stop(); Check("display change"); };
            periodic.Interval = intervalSeconds * 1000;
            periodic.Tick += delegate { Check("periodic"); };
            Load += delegate { Visible = false; periodic.Start(); Check("start"); };
        }

        protected override void WndProc(ref Message m)
        {
            if (m.Msg == WM_DISPLAYCHANGE)
            {
                debounce.Stop();
                debounce.Start();
            }
            base.WndProc(ref m);
        }

        public static bool Intended(List<Target> targets, bool specializePanel, out string why)
        {
            if (!Topology.IddAttached(targets)) { why = "the IDD monitor is not part of the desktop"; return false; }
            if (specializePanel)
            {
                foreach (Target t in targets)
                {
                    if (!t.IsIdd && !t.Specialized) { why = "panel " + t.FriendlyName + " is not specialized"; return false; }
                }
            }
            why = "";
            return true;
        }

        void Check(string reason)
        {
            try
            {
                if (valveTripped) { WriteState(); return; }
                List<Target> targets = Topology.Read(iddInstance);
                string why;
                if (Intended(targets, specializePanel, out why)) { failures = 0; lastError = ""; WriteState(); return; }
                Log("re-applying after " + reason + ": " + why);
                int rc = Topology.ExtendForSession();
                if (rc != 0) Log("SetDisplayConfig(SDC_APPLY|SDC_TOPOLOGY_EXTEND) returned " + rc);
                List<Target> now = Topology.Read(iddInstance);
                // The panel leaves the desktop only while the IDD is attached: Windows never
                // removes the last desktop display, and a desktop without a monitor is worse.
                if (specializePanel && Topology.IddAttached(now))
                {
                    foreach (Target t in now)
                    {
                        if (!t.IsIdd && !t.Specialized)
                        {
                            int src = Topology.Specialize(t, true);
                            if (src != 0) Log("DisplayConfigSetDeviceInfo(SET_MONITOR_SPECIALIZATION) rejected: " + src);
                        }
                    }
                }
                if (Intended(Topology.Read(iddInstance), specializePanel, out why)) { failures = 0; lastError = ""; }
                else { failures++; lastError = why; }
                if (failures >= maxFailures) TripValve();
            }
            catch (Exception error)
            {
                failures++;
                lastError = error.Message;
                Log("check failed: " + error.Message);
                if (failures >= maxFailures) TripValve();
            }
            WriteState();
        }

        // Safety valve: give the panel back to the desktop and stop re-applying.
        void TripValve()
        {
            valveTripped = true;
            Log("safety valve: " + failures + " failed re-applies in a row (" + lastError + "); restoring the panel");
            try
            {
                foreach (Target t in Topology.Read(iddInstance))
                {
                    if (!t.IsIdd && t.Specialized) Log("un-specialize " + t.FriendlyName + ": " + Topology.Specialize(t, false));
                }
                Log("extend: " + Topology.ExtendForSession());
            }
            catch (Exception error)
            {
                Log("restoring the panel failed: " + error.Message);
            }
        }

        void WriteState()
        {
            string text = "{\"heartbeat\":" + Topology.Quote(DateTime.UtcNow.ToString("o"))
                + ",\"user\":" + Topology.Quote(Environment.UserName)
                + ",\"failures\":" + failures
                + ",\"valve_tripped\":" + (valveTripped ? "true" : "false")
                + ",\"last_error\":" + Topology.Quote(lastError) + "}";
            File.WriteAllText(statePath + ".tmp", text, new UTF8Encoding(false));
            File.Copy(statePath + ".tmp", statePath, true);
            File.Delete(statePath + ".tmp");
        }

        void Log(string line)
        {
            File.AppendAllText(logPath, DateTime.UtcNow.ToString("o") + " " + line + "\r\n", new UTF8Encoding(false));
        }
    }
}
