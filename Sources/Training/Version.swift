import Foundation
import Tensor

public enum MaclrVersion {
    public static let string = "0.1.0"
}

/// Choosing OpenBLAS's kernels before it is used.
public enum BLASKernels {
    /// On a CPU with AVX-512 and no OPENBLAS_CORETYPE chosen by the user, sets it to SkylakeX and
    /// re-executes the process once (OpenBLAS reads the variable only when it loads).
    public static func selectBeforeUse() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, Engine.cpuHasAVX512 else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        let args = CommandLine.arguments
        var cArgs = args.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &cArgs)
        // exec failed: carry on with the kernels already loaded
    }
}
