import CBLAS
import Foundation

public enum MaclrVersion {
    public static let string = "0.1.0"
}

/// Choosing OpenBLAS's kernels before it is used.
public enum BLASKernels {
    /// On a CPU with AVX-512 and no OPENBLAS_CORETYPE chosen by the user, sets it to SkylakeX and
    /// re-executes the process once (OpenBLAS reads the variable only when it loads).
    public static func selectBeforeUse() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, cpuHasAVX512() else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        let args = CommandLine.arguments
        var cArgs = args.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &cArgs)
        // exec failed: carry on with the kernels already loaded
    }

    /// Reads the first "flags" line of /proc/cpuinfo with stdio: the file reports size 0, so
    /// whole-file readers that trust stat() see it empty.
    static func cpuHasAVX512() -> Bool {
        guard let file = fopen("/proc/cpuinfo", "r") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let set = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            return ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"].allSatisfy(set.contains)
        }
        return false
    }
}
