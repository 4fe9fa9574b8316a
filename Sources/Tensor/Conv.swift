import Foundation

// The conv op: `conv3d`, its input and weight gradients as ops of their own, and the one
// function that routes each call to a kernel path by its geometry alone. The kernels live
// beside this file, one family each:
//   ConvWholeMatrix.swift  im2col into one matrix, one sgemm, col2im: the reference path
//   ConvBlocked.swift      im2col block by block into L2, multiplied by our packed GEMM
//   ConvImplicit.swift     implicit GEMM: input runs read in place through pointer tables
//   ConvTemporal.swift     (kT, 1, 1) convs as one GEMM per temporal tap over whole frames
// Activations are channels-last: x (N, T, H, W, C), weight (O, kT, kH, kW, C), y (N, oT, oH, oW, O).

/// Which of the three products of a conv is computed.
public enum ConvDirection: String, Sendable, CaseIterable {
    case forward = "fwd", inputGrad = "dx", weightGrad = "dw"
}

/// A kernel path for one direction of one conv.
public enum ConvPath: String, Sendable, CaseIterable {
    /// 1x1x1, stride 1, no padding: the input is the im2col matrix, one sgemm.
    case pointwise
    /// One im2col matrix (or a few samples' at a time) and one sgemm: the reference.
    case wholeMatrix
    /// im2col block by block into an L2-sized buffer, each block multiplied at once.
    case blockedIm2col
    /// No im2col at all: tiles read the input's kernel rows through pointer tables.
    case implicitGEMM
    /// A temporal conv as one sgemm per tap over whole frames.
    case temporalPerTap
    /// A temporal conv on our packed GEMM, threads claiming a few frames at a time.
    case temporalBlocked
    /// A temporal conv's input gradient as one implicit GEMM over the taps' runs of gy.
    case temporalImplicit
    /// A (1, 3, 3) conv at stride 1 as Winograd F(2x2, 3x3): fewer products, transforms around them.
    case winograd
    /// Few input and output channels (the stems): vectors along an output row, read from the
    /// input split into planes per channel and stride phase.
    case stemRows
}

/// The kernel path for `direction` of a conv of geometry `g` under `options`.
///
/// Implicit and temporal-blocked paths need our packed GEMM at full width (`EngineOptions.blockedConvs`,
/// on for native AVX-512 builds); without it convs run on OpenBLAS through the blocked im2col,
/// whole-matrix or per-tap paths. Where each path wins is measured by `maclr bench conv` (shape by shape) and
/// `maclr bench engine --layers` (inside a step).
public func convPath(_ g: ConvGeometry, _ direction: ConvDirection, options: EngineOptions = Engine.options) -> ConvPath {
    if g.isPointwise { return .pointwise }
    let blocked = options.blockedConvs, implicit = options.blockedConvs && options.implicitConvs
    // Winograd pays where a frame's tiles outnumber the weights' columns well (its weights'
    // transforms cost per call, its products per tile; the weight gradient's partial sums are 16
    // times the kernel's, so it needs more tiles still), on frames of 8x8 or more (a smaller one
    // wastes much of its edge tiles), and where each of its 16 GEMMs is deep enough for OpenBLAS
    // to run at speed: the input channels forward, the output ones backward; the weight
    // gradient's GEMMs run over the tiles, but small channel counts make them narrow.
    // Without our packed GEMM the direct alternative is one whole-matrix OpenBLAS GEMM, which
    // the narrow layers (16-36 channels) leave at half its speed: there shallower GEMMs pay.
    if options.winogradConvs && g.isWinogradShape && g.h >= 8 && g.w >= 8 {
        let rows = g.n * g.rowsPerSample, shallow = !blocked
        switch direction {
        case .forward: if g.c >= (shallow ? 16 : 32) && rows >= 8 * g.o { return .winograd }
        case .inputGrad: if g.o >= (shallow ? 32 : 48) && rows >= 8 * g.o { return .winograd }
        case .weightGrad: if min(g.c, g.o) >= 16 && rows >= 16 * g.o { return .winograd }
        }
    }
    // The stems: 2-4 channels in and at most 16 out, whose runs and output rows fill few of a
    // channel-wide tile's lanes; an output row wide enough to fill most of a vector's.
    if options.stemRowConvs && direction != .inputGrad && g.isStemShape { return .stemRows }
    if g.isTemporalOnly {
        switch direction {
        case .forward: return blocked ? .temporalBlocked : .temporalPerTap
        // gy's runs of O values must fit one depth slice of the packed weights
        case .inputGrad: return implicit && g.o <= PackedGEMM.kc ? .temporalImplicit : .temporalPerTap
        // frames of gy are packed: the smaller operand only when O <= C
        case .weightGrad: return blocked && g.o <= g.c ? .temporalBlocked : .temporalPerTap
        }
    }
    // Blocking pays where output rows outnumber the weights' columns well (8x), or 4x when the
    // conv pads over time: blocks skip the dead taps of a clip's first and last frames, which
    // one whole-matrix GEMM cannot. The deepest layers (few rows, many columns) stay whole.
    guard blocked || options.blockedBLASConvs, g.n * g.rowsPerSample >= (g.padding[0] > 0 ? 4 : 8) * g.o else { return .wholeMatrix }
    // Without our packed GEMM, OpenBLAS multiplies each block (`BlockGEMM`): it pays on narrow
    // outputs over many rows (R(2+1)D's strided 16->57 at width 1/4), where the whole matrix's
    // writing and re-reading weighs most; wider ones stay whole.
    guard blocked else { return g.n * g.rowsPerSample >= 32 * g.o ? .blockedIm2col : .wholeMatrix }
    // The implicit kernels read one kernel row (kW*C values) per depth step of a packed slice.
    let runFits = g.kernel[2] * g.c <= PackedGEMM.kc
    switch direction {
    case .forward:
        // Expanding few input channels costs little, and the blocked path's 12-row tiles beat the
        // implicit 8-row ones there; the implicit path wins from 24 channels, on narrow outputs
        // (the stems) and on strided convs.
        return implicit && runFits && (g.c >= 24 || g.o <= 16 || g.stride[1] > 1 || g.stride[2] > 1) ? .implicitGEMM : .blockedIm2col
    case .inputGrad:
        return .blockedIm2col
    case .weightGrad:
        // Kernel rows of at least a tile's 12 values, and output channels in whole half panels
        // or fewer than 16: a narrow tail after whole panels is better served by the blocked path.
        let run = g.kernel[2] * g.c
        return implicit && runFits && run >= PackedGEMM.mr && (g.o % (PackedGEMM.nr / 2) == 0 || g.o < PackedGEMM.nr / 2)
            ? .implicitGEMM : .blockedIm2col
    }
}

/// Runs the kernel of `path` for one direction. Pointers: forward (x, W) -> y, input gradient
/// (gy, W) -> gx, weight gradient (x, gy) -> gW; every output element is written.
func runConvKernel(_ direction: ConvDirection, _ path: ConvPath, _ g: ConvGeometry,
                   _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
    let rows = g.n * g.rowsPerSample, k = g.columns
    switch (direction, path) {
    case (.forward, .pointwise): sgemm(false, true, rows, g.o, k, 1, a, k, b, k, 0, out, g.o)
    case (.forward, .wholeMatrix): wholeMatrixForward(a, b, g, out)
    case (.forward, .blockedIm2col): blockedIm2colForward(a, b, g, out)
    case (.forward, .implicitGEMM): implicitForward(a, b, g, out)
    case (.forward, .temporalPerTap): temporalForward(a, b, g, out)
    case (.forward, .temporalBlocked): blockedTemporalForward(a, b, g, out)
    case (.forward, .winograd): winogradForward(a, b, g, out)
    case (.forward, .stemRows): stemRowsForward(a, b, g, out)
    case (.inputGrad, .pointwise): sgemm(false, false, rows, k, g.o, 1, a, g.o, b, k, 0, out, k)
    case (.inputGrad, .wholeMatrix): wholeMatrixInputGrad(a, b, g, out)
    case (.inputGrad, .blockedIm2col): blockedCol2imInputGrad(a, b, g, out)
    case (.inputGrad, .temporalPerTap): temporalInputGrad(a, b, g, out)
    case (.inputGrad, .temporalImplicit): implicitTemporalInputGrad(a, b, g, out)
    case (.inputGrad, .winograd): winogradInputGrad(a, b, g, out)
    case (.weightGrad, .pointwise): sgemm(true, false, g.o, k, rows, 1, b, g.o, a, k, 0, out, k)
    case (.weightGrad, .wholeMatrix): wholeMatrixWeightGrad(a, b, g, out)
    case (.weightGrad, .blockedIm2col): blockedIm2colWeightGrad(a, b, g, out)
    case (.weightGrad, .implicitGEMM): implicitWeightGrad(a, b, g, out)
    case (.weightGrad, .temporalPerTap): temporalWeightGrad(a, b, g, out)
    case (.weightGrad, .temporalBlocked): blockedTemporalWeightGrad(a, b, g, out)
    case (.weightGrad, .winograd): winogradWeightGrad(a, b, g, out)
    case (.weightGrad, .stemRows): stemRowsWeightGrad(a, b, g, out)
    default: preconditionFailure("conv path \(path.rawValue) has no \(direction.rawValue) kernel")
    }
}

/// Watches every conv kernel the engine runs (a benchmark's per-layer timer): `run` must be
/// called exactly once.
public protocol ConvObserver: AnyObject {
    func conv(_ direction: ConvDirection, _ g: ConvGeometry, _ path: ConvPath, run: () -> Void)
}

/// Routes one direction of a conv and runs it, under the observer when one is set.
@inline(__always)
func conv(_ direction: ConvDirection, _ g: ConvGeometry, _ a: Tensor, _ b: Tensor, into out: Tensor) {
    let path = convPath(g, direction)
    guard let observer = Engine.convObserver else {
        runConvKernel(direction, path, g, a.data, b.data, out.data)
        return
    }
    observer.conv(direction, g, path) { runConvKernel(direction, path, g, a.data, b.data, out.data) }
}

// The three ops below are closed under differentiation: each one's backward is made of the
// other two, which is what makes conv nets twice differentiable (MCL's alignment loss).

/// 3-D convolution, channels-last. x (N, T, H, W, C), weight (O, kT, kH, kW, C) -> (N, oT, oH, oW, O).
public func conv3d(_ x: Tensor, _ weight: Tensor, stride: [Int] = [1, 1, 1], padding: [Int] = [0, 0, 0]) -> Tensor {
    let g = ConvGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding)
    return conv3d(x, weight, g)
}

func conv3d(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
    let y = Tensor(uninitialized: g.outputShape)
    conv(.forward, g, x, weight, into: y)
    return record("conv3d", y, [x, weight]) { gy in
        [x.tracksGrad ? conv3dInputGrad(gy, weight, g) : nil,
         weight.tracksGrad ? conv3dWeightGrad(x, gy, g) : nil]
    }
}

/// The input gradient of conv3d as an op: linear in gy and in weight. gy (N, oT, oH, oW, O) -> gx (N, T, H, W, C).
func conv3dInputGrad(_ gy: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
    let gx = Tensor(uninitialized: g.inputShape)
    conv(.inputGrad, g, gy, weight, into: gx)
    return record("conv3d_input_grad", gx, [gy, weight]) { ggx in
        [gy.tracksGrad ? conv3d(ggx, weight, g) : nil,
         weight.tracksGrad ? conv3dWeightGrad(ggx, gy, g) : nil]
    }
}

/// The weight gradient of conv3d as an op: linear in x and in gy. -> gW (O, kT, kH, kW, C).
func conv3dWeightGrad(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry) -> Tensor {
    let gw = Tensor(uninitialized: g.weightShape)
    conv(.weightGrad, g, x, gy, into: gw)
    return record("conv3d_weight_grad", gw, [x, gy]) { ggw in
        [x.tracksGrad ? conv3dInputGrad(gy, ggw, g) : nil,
         gy.tracksGrad ? conv3d(x, ggw, g) : nil]
    }
}
