import Foundation
import Tensor

public enum MaclrVersion {
    public static let string = "0.1.0"
}

/// How the engine runs in this process.
public enum Runtime {
    /// This machine's cores: the default thread count.
    public static var cores: Int { EngineOptions.cores }

    /// Which conv paths the engine may take: the fastest the routing picks (default), the same
    /// without Winograd and the stems' row vectors (direct convs on the input as laid out),
    /// blocked im2col without implicit GEMMs, or the reference (whole im2col matrix on OpenBLAS).
    public enum ConvPaths: String, CaseIterable, Sendable { case fastest, direct, blocked, reference }

    /// Which kernels: the widest this CPU has (auto), or AVX2's on any CPU (the paths an AVX2-only
    /// machine runs, measurable on an AVX-512 one).
    public enum Kernels: String, CaseIterable, Sendable { case auto, avx2 }

    public static func configure(threads: Int, convPaths: ConvPaths = .fastest, kernels: Kernels = .auto) {
        var options = kernels == .avx2 ? EngineOptions.avx2(threads: threads) : EngineOptions(threads: threads)
        switch convPaths {
        case .fastest: break
        case .direct: options.winogradConvs = false; options.stemRowConvs = false
        case .blocked: options.implicitConvs = false; options.winogradConvs = false; options.stemRowConvs = false
        case .reference: options = .reference(threads: threads)
        }
        Engine.options = options
    }

    /// What runs the GEMMs, for benchmark headers.
    public static var gemmDescription: String { Engine.gemmDescription }
}

/// Choosing OpenBLAS's kernels before it is used.
public enum BLASKernels {
    /// On a CPU with AVX-512 and no OPENBLAS_CORETYPE chosen by the user, sets it to SkylakeX and
    /// re-executes the process once (OpenBLAS reads the variable only when it loads); with
    /// `arguments` asking for AVX2 kernels (`--kernels avx2`), Haswell's, whatever the environment says.
    public static func selectBeforeUse(arguments: [String] = CommandLine.arguments) {
        let env = ProcessInfo.processInfo.environment
        let forcedAVX2 = zip(arguments, arguments.dropFirst()).contains { $0 == ("--kernels", "avx2") } || arguments.contains("--kernels=avx2")
        let wanted: String
        if forcedAVX2 {
            guard env["OPENBLAS_CORETYPE"] != "Haswell" else { return }
            wanted = "Haswell"
        } else {
            guard env["OPENBLAS_CORETYPE"] == nil, Engine.cpuHasAVX512 else { return }
            wanted = "SkylakeX"
        }
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        let args = CommandLine.arguments
        var cArgs = args.map { strdup($0) } + [nil]
        execv("/proc/self/exe", &cArgs)
        // exec failed: carry on with the kernels already loaded
    }
}
