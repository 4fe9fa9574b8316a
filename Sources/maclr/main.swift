import ArgumentParser
import Foundation
import Training

// OpenBLAS picks its kernels when it loads, before main: on a CPU with AVX-512 it would take the
// AVX2 ones unless OPENBLAS_CORETYPE is set, so set it and re-execute once.
BLASKernels.selectBeforeUse()

// Past a file size limit (ulimit -f) a write should fail with an error that names the file, not
// end the process by signal.
signal(SIGXFSZ, SIG_IGN)

struct Maclr: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maclr",
        abstract: "Video representation learning the MaCLR way: a Visual and a Motion pathway, contrastive losses, on our own engine.",
        version: MaclrVersion.string,
        subcommands: [Synth.self, Prepare.self, Inspect.self, Pretrain.self, Finetune.self, Eval.self, Extract.self, Export.self, SaliencyCommand.self, Ablate.self, RecipeCommand.self, Bench.self])
}

Maclr.main()
