import Dispatch
import Foundation
import Tensor

/// A single-channel float image, row-major (H, W).
public struct GrayImage: Sendable {
    public var width: Int, height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height, "image \(width)x\(height) needs \(width * height) pixels, got \(pixels.count)")
        self.width = width; self.height = height; self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: Float = 0) {
        self.init(width: width, height: height, pixels: [Float](repeating: fill, count: width * height))
    }

    /// Luma (BT.601) of an RGB uint8 frame (H, W, 3).
    public init<C: Collection>(rgb: C, width: Int, height: Int) where C.Element == UInt8, C.Index == Int {
        var p = [Float](repeating: 0, count: width * height)
        var i = rgb.startIndex
        for k in 0..<(width * height) {
            p[k] = 0.299 * Float(rgb[i]) + 0.587 * Float(rgb[i + 1]) + 0.114 * Float(rgb[i + 2])
            i += 3
        }
        self.init(width: width, height: height, pixels: p)
    }

    @inline(__always) subscript(x: Int, y: Int) -> Float {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    /// Bilinear sample with clamped borders.
    @inline(__always) func sample(_ x: Float, _ y: Float) -> Float {
        let xc = min(max(x, 0), Float(width - 1)), yc = min(max(y, 0), Float(height - 1))
        let x0 = min(Int(xc), width - 2 < 0 ? 0 : width - 2), y0 = min(Int(yc), height - 2 < 0 ? 0 : height - 2)
        let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        let fx = xc - Float(x0), fy = yc - Float(y0)
        let a = pixels[y0 * width + x0], b = pixels[y0 * width + x1]
        let c = pixels[y1 * width + x0], d = pixels[y1 * width + x1]
        return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    }
}

/// A dense flow field: u (horizontal) and v (vertical) displacement in pixels, from frame i to i+1.
public struct FlowField: Sendable {
    public var width: Int, height: Int
    public var u: [Float], v: [Float]

    public init(width: Int, height: Int, u: [Float], v: [Float]) {
        self.width = width; self.height = height; self.u = u; self.v = v
    }

    public init(width: Int, height: Int) {
        self.init(width: width, height: height, u: [Float](repeating: 0, count: width * height),
                  v: [Float](repeating: 0, count: width * height))
    }
}

/// TV-L1 optical flow (Zach, Pock, Bischof 2007) in the multi-scale, warped, duality-based form
/// of Sánchez, Meinhardt-Llopis, Facciolo (IPOL 2013) that OpenCV's DualTVL1 and denseflow use.
/// Defaults are OpenCV's.
public struct TVL1 : Sendable {
    /// Time step of the dual update (stable for <= 0.25).
    public var tau: Float = 0.25
    /// Weight of the data term: smaller gives smoother flow.
    public var lambda: Float = 0.15
    /// Coupling between the primal variable and its auxiliary copy.
    public var theta: Float = 0.3
    public var scales = 5
    public var warps = 5
    /// Stopping threshold on the mean squared change of the flow per inner iteration.
    public var epsilon: Float = 0.01
    public var innerIterations = 30
    public var outerIterations = 10
    public var scaleStep: Float = 0.8
    /// Median filter size applied to the flow after each warp (0 or 1: none).
    public var medianFilter = 5

    public init() {}

    /// Flow from `first` to `second` (same size). `levelTime`, when given, is told each pyramid
    /// level's size (W, H) and the seconds its warps and iterations took, coarsest first.
    public func flow(_ first: GrayImage, _ second: GrayImage, levelTime: ((_ width: Int, _ height: Int, _ seconds: Double) -> Void)? = nil) -> FlowField {
        precondition(first.width == second.width && first.height == second.height, "TV-L1 frames differ in size")
        // Pyramids, finest first.
        var pyr0 = [first], pyr1 = [second]
        let sigma = 0.6 * (1 / (scaleStep * scaleStep) - 1).squareRoot()
        for _ in 1..<max(1, scales) {
            let prev0 = pyr0.last!, prev1 = pyr1.last!
            let w = Int((Float(prev0.width) * scaleStep).rounded()), h = Int((Float(prev0.height) * scaleStep).rounded())
            if w < 16 || h < 16 { break }
            pyr0.append(resize(gaussianBlur(prev0, sigma: sigma), width: w, height: h))
            pyr1.append(resize(gaussianBlur(prev1, sigma: sigma), width: w, height: h))
        }
        var field = FlowField(width: pyr0.last!.width, height: pyr0.last!.height)
        for level in stride(from: pyr0.count - 1, through: 0, by: -1) {
            let i0 = pyr0[level], i1 = pyr1[level]
            let start = DispatchTime.now().uptimeNanoseconds
            if field.width != i0.width || field.height != i0.height {
                field = upsample(field, width: i0.width, height: i0.height)
            }
            solve(i0, i1, &field)
            levelTime?(i0.width, i0.height, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return field
    }

    /// The warping and dual-primal iterations at one scale. Each iteration is two passes over
    /// the pixels: the thresholding, the divergence of the duals and the primal update at once
    /// (each pixel's arithmetic as the textbook's three loops have it), then both dual updates.
    /// One thread per frame pair: `Motion.flows` runs the pairs in parallel.
    func solve(_ i0: GrayImage, _ i1: GrayImage, _ field: inout FlowField) {
        let w = i0.width, h = i0.height, n = w * h
        let (i1x, i1y) = centeredGradient(i1)
        var duals = [Float](repeating: 0, count: 4 * n)         // p11, p12, p21, p22
        var warped = [Float](repeating: 0, count: 4 * n)        // i1 warped: its x and y gradients, |grad|^2, rho's constant
        let lt = lambda * theta, taut = tau / theta
        for _ in 0..<warps {
            field.u.withUnsafeMutableBufferPointer { ub in field.v.withUnsafeMutableBufferPointer { vb in
                warped.withUnsafeMutableBufferPointer { wb in duals.withUnsafeMutableBufferPointer { db in
                    let u = ub.baseAddress!, v = vb.baseAddress!
                    let ix = wb.baseAddress!, iy = ix + n, grad = ix + 2 * n, rhoC = ix + 3 * n
                    let p11 = db.baseAddress!, p12 = p11 + n, p21 = p11 + 2 * n, p22 = p11 + 3 * n
                    // Warp the second image (and its gradient) by the current flow.
                    for y in 0..<h { for x in 0..<w {
                        let k = y * w + x
                        let fx = Float(x) + u[k], fy = Float(y) + v[k]
                        let a = i1.sample(fx, fy), gx = i1x.sample(fx, fy), gy = i1y.sample(fx, fy)
                        ix[k] = gx; iy[k] = gy
                        grad[k] = gx * gx + gy * gy
                        rhoC[k] = a - gx * u[k] - gy * v[k] - i0.pixels[k]
                    }}
                    var iteration = 0
                    var change = Float.infinity
                    while change > epsilon * epsilon && iteration < innerIterations * outerIterations {
                        iteration += 1
                        var sum: Float = 0
                        for y in 0..<h { for x in 0..<w {
                            let k = y * w + x
                            // thresholding: v = argmin of the linearised data term around u
                            let rho = rhoC[k] + ix[k] * u[k] + iy[k] * v[k]
                            var d1: Float = 0, d2: Float = 0
                            if rho < -lt * grad[k] { d1 = lt * ix[k]; d2 = lt * iy[k] }
                            else if rho > lt * grad[k] { d1 = -lt * ix[k]; d2 = -lt * iy[k] }
                            else if grad[k] > 1e-10 { let f = -rho / grad[k]; d1 = f * ix[k]; d2 = f * iy[k] }
                            let v1 = u[k] + d1, v2 = v[k] + d2
                            // div p with backward differences (the adjoint of the forward-difference gradient)
                            let a1 = x == 0 ? p11[k] : (x == w - 1 ? -p11[k - 1] : p11[k] - p11[k - 1])
                            let b1 = y == 0 ? p12[k] : (y == h - 1 ? -p12[k - w] : p12[k] - p12[k - w])
                            let a2 = x == 0 ? p21[k] : (x == w - 1 ? -p21[k - 1] : p21[k] - p21[k - 1])
                            let b2 = y == 0 ? p22[k] : (y == h - 1 ? -p22[k - w] : p22[k] - p22[k - w])
                            let nu = v1 + theta * (a1 + b1), nv = v2 + theta * (a2 + b2)
                            sum += (nu - u[k]) * (nu - u[k]) + (nv - v[k]) * (nv - v[k])
                            u[k] = nu; v[k] = nv
                        }}
                        change = sum / Float(n)
                        // Dual update with forward differences, projected back onto the unit ball.
                        for y in 0..<h { for x in 0..<w {
                            let k = y * w + x
                            let ux = x < w - 1 ? u[k + 1] - u[k] : 0, uy = y < h - 1 ? u[k + w] - u[k] : 0
                            let vx = x < w - 1 ? v[k + 1] - v[k] : 0, vy = y < h - 1 ? v[k + w] - v[k] : 0
                            let normU = 1 + taut * (ux * ux + uy * uy).squareRoot(), normV = 1 + taut * (vx * vx + vy * vy).squareRoot()
                            p11[k] = (p11[k] + taut * ux) / normU; p12[k] = (p12[k] + taut * uy) / normU
                            p21[k] = (p21[k] + taut * vx) / normV; p22[k] = (p22[k] + taut * vy) / normV
                        }}
                    }
                }}
            }}
            if medianFilter > 1 {
                field.u = median(field.u, w, h, medianFilter)
                field.v = median(field.v, w, h, medianFilter)
            }
        }
    }
}

// MARK: - image helpers

/// Centred differences, one-sided at the border.
func centeredGradient(_ img: GrayImage) -> (GrayImage, GrayImage) {
    let w = img.width, h = img.height
    var gx = GrayImage(width: w, height: h), gy = GrayImage(width: w, height: h)
    for y in 0..<h {
        for x in 0..<w {
            let xl = max(x - 1, 0), xr = min(x + 1, w - 1), yu = max(y - 1, 0), yd = min(y + 1, h - 1)
            gx[x, y] = (img[xr, y] - img[xl, y]) / Float(max(xr - xl, 1))
            gy[x, y] = (img[x, yd] - img[x, yu]) / Float(max(yd - yu, 1))
        }
    }
    return (gx, gy)
}

/// Separable Gaussian blur with clamped borders.
public enum Blur {
    public static func gaussian(_ img: GrayImage, sigma: Float) -> GrayImage { gaussianBlur(img, sigma: sigma) }
}

func gaussianBlur(_ img: GrayImage, sigma: Float) -> GrayImage {
    guard sigma > 0 else { return img }
    let radius = max(1, Int((3 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { Foundation.exp(-Float($0 * $0) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    let w = img.width, h = img.height
    var tmp = GrayImage(width: w, height: h), out = GrayImage(width: w, height: h)
    for y in 0..<h { for x in 0..<w {
        var s: Float = 0
        for (i, k) in kernel.enumerated() { s += k * img[min(max(x + i - radius, 0), w - 1), y] }
        tmp[x, y] = s
    }}
    for y in 0..<h { for x in 0..<w {
        var s: Float = 0
        for (i, k) in kernel.enumerated() { s += k * tmp[x, min(max(y + i - radius, 0), h - 1)] }
        out[x, y] = s
    }}
    return out
}

/// Bilinear resize (pixel centres aligned).
func resize(_ img: GrayImage, width: Int, height: Int) -> GrayImage {
    var out = GrayImage(width: width, height: height)
    let sx = Float(img.width) / Float(width), sy = Float(img.height) / Float(height)
    for y in 0..<height { for x in 0..<width {
        out[x, y] = img.sample((Float(x) + 0.5) * sx - 0.5, (Float(y) + 0.5) * sy - 0.5)
    }}
    return out
}

/// Resizes a flow field and scales its vectors by the size ratio.
func upsample(_ f: FlowField, width: Int, height: Int) -> FlowField {
    let u = resize(GrayImage(width: f.width, height: f.height, pixels: f.u), width: width, height: height)
    let v = resize(GrayImage(width: f.width, height: f.height, pixels: f.v), width: width, height: height)
    let rx = Float(width) / Float(f.width), ry = Float(height) / Float(f.height)
    return FlowField(width: width, height: height, u: u.pixels.map { $0 * rx }, v: v.pixels.map { $0 * ry })
}
