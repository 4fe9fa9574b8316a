/// What data-parallel processes share: sums of gradients and values, and the rows each one
/// holds. The engine and the model see only this; `Cluster` implements it over MPI.
public protocol Collective: AnyObject {
    /// This process, 0..<size.
    var rank: Int { get }
    var size: Int { get }
    /// Replaces `count` floats at `values` with their sum over every process.
    func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int)
    /// The same in double precision (statistics whose sums cancel).
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int)
    /// Every process's `x` (the same shape on each) concatenated along axis 0 in rank order.
    func gatherRows(_ x: Tensor) -> Tensor
    /// Every process's `value`, in rank order.
    func gather(_ value: UInt64) -> [UInt64]
}

/// One process: nothing to share.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {}
    public func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) {}
    public func gatherRows(_ x: Tensor) -> Tensor { x }
    public func gather(_ value: UInt64) -> [UInt64] { [value] }
}
