import Foundation

/// Whether ops record themselves on the tape. Off inside `noGrad`, and during a backward pass
/// unless `createGraph` is set, in which case the backward ops are recorded too and the
/// gradient can itself be differentiated (double backward).
public enum GradMode {
    nonisolated(unsafe) public internal(set) static var isEnabled = true

    @discardableResult
    public static func with<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
        let saved = isEnabled
        isEnabled = enabled
        defer { isEnabled = saved }
        return try body()
    }
}

/// Runs `body` without recording: for evaluation, EMA updates and other bookkeeping.
@discardableResult
public func noGrad<R>(_ body: () throws -> R) rethrows -> R { try GradMode.with(false, body) }

/// One recorded op: its inputs and the vector-Jacobian product that maps the gradient of its
/// output to gradients of its inputs (nil for an input that needs none). The backward closures
/// are written with tensor ops, so they record when the backward pass creates a graph.
public final class Node {
    public let name: String
    let inputs: [Tensor]
    var backward: ((Tensor) -> [Tensor?])?

    init(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Attaches a node to `output` when recording and any input tracks gradients.
@inline(__always)
func record(_ name: String, _ output: Tensor, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
    if GradMode.isEnabled, inputs.contains(where: { $0.tracksGrad }) {
        output.node = Node(name, inputs, backward)
    }
    return output
}

/// Tensors reachable from `root` through recorded nodes, inputs before outputs. Expansion stops
/// at tensors in `stops` (their own history is not needed).
private func topologicalOrder(from root: Tensor, stops: Set<ObjectIdentifier>) -> [Tensor] {
    var order: [Tensor] = []
    var visited = Set<ObjectIdentifier>()
    // Iterative DFS: deep networks would overflow the stack with recursion.
    var stack: [(Tensor, Bool)] = [(root, false)]
    while let (t, expanded) = stack.popLast() {
        let id = ObjectIdentifier(t)
        if expanded { order.append(t); continue }
        if visited.contains(id) { continue }
        visited.insert(id)
        stack.append((t, true))
        if let node = t.node, !stops.contains(id) {
            for input in node.inputs where input.tracksGrad && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
    }
    return order
}

/// The tensors of `order` (inputs before outputs) from which some tensor of `targets` is reached
/// through recorded nodes: the only ones whose gradient leads to a target's.
private func leadingTo(_ targets: Set<ObjectIdentifier>, in order: [Tensor]) -> Set<ObjectIdentifier> {
    var leading = Set<ObjectIdentifier>()
    for t in order {
        let id = ObjectIdentifier(t)
        if targets.contains(id) || t.node?.inputs.contains(where: { leading.contains(ObjectIdentifier($0)) }) == true { leading.insert(id) }
    }
    return leading
}

/// Backpropagates `seed` from `root`. With `onlyTowards`, only the nodes between `root` and
/// those tensors run their backward (as torch.autograd.grad prunes): the gradient of a saliency
/// at a late layer then costs the layers after it, not the whole network.
private func propagate(root: Tensor, seed: Tensor, stops: Set<ObjectIdentifier>, keep: Set<ObjectIdentifier>,
                       createGraph: Bool, releaseGraph: Bool, onlyTowards targets: Set<ObjectIdentifier>? = nil) -> [ObjectIdentifier: Tensor] {
    precondition(seed.shape == root.shape, "gradient seed \(seed.shape) does not match output \(root.shape)")
    let order = topologicalOrder(from: root, stops: stops)
    let leading = targets.map { leadingTo($0, in: order) }
    var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
    var kept: [ObjectIdentifier: Tensor] = [:]
    GradMode.with(createGraph) {
        for t in order.reversed() {
            let id = ObjectIdentifier(t)
            guard let g = grads[id] else { continue }
            if keep.contains(id) { kept[id] = g }
            guard let node = t.node, !stops.contains(id), let backward = node.backward else { continue }
            // a node none of whose inputs leads to a target (a target's own, say) has nothing to pass on
            if let leading, !node.inputs.contains(where: { leading.contains(ObjectIdentifier($0)) }) { continue }
            grads[id] = nil
            let inputGrads = backward(g)
            for (input, ig) in zip(node.inputs, inputGrads) {
                guard let ig, input.tracksGrad, leading?.contains(ObjectIdentifier(input)) ?? true else { continue }
                precondition(ig.shape == input.shape, "\(node.name) backward gave \(ig.shape) for input \(input.shape)")
                let iid = ObjectIdentifier(input)
                if let existing = grads[iid] { grads[iid] = existing + ig } else { grads[iid] = ig }
            }
            if releaseGraph { node.backward = nil; t.node = nil }
        }
    }
    for (id, g) in grads where keep.contains(id) { kept[id] = g }
    return kept
}

extension Tensor {
    /// Accumulates d(self)/d(leaf) into `grad` of every leaf with `requiresGrad`. `self` is
    /// usually a scalar loss; `seed` is the upstream gradient otherwise. The graph is released
    /// unless `retainGraph` (or `createGraph`) is set.
    public func backward(seed: Tensor? = nil, createGraph: Bool = false, retainGraph: Bool = false) {
        let seedTensor = seed ?? Tensor.ones(shape)
        let order = topologicalOrder(from: self, stops: [])
        let leaves = order.filter { $0.requiresGrad && $0.node == nil }
        let keep = Set(leaves.map { ObjectIdentifier($0) })
        let grads = propagate(root: self, seed: seedTensor, stops: [], keep: keep, createGraph: createGraph,
                              releaseGraph: !(retainGraph || createGraph))
        for leaf in leaves {
            guard let g = grads[ObjectIdentifier(leaf)] else { continue }
            if let existing = leaf.grad {
                leaf.grad = GradMode.with(createGraph) { existing + g }
            } else {
                leaf.grad = g
            }
        }
    }
}

/// d(output)/d(inputs), like torch.autograd.grad: returns one gradient per input (nil where the
/// output does not depend on it) without touching `.grad`. With `createGraph`, the returned
/// gradients are themselves recorded and can be differentiated again.
public func gradients(of output: Tensor, wrt inputs: [Tensor], seed: Tensor? = nil,
                      createGraph: Bool = false, retainGraph: Bool? = nil) -> [Tensor?] {
    let ids = inputs.map { ObjectIdentifier($0) }
    let grads = propagate(root: output, seed: seed ?? Tensor.ones(output.shape), stops: [], keep: Set(ids),
                          createGraph: createGraph, releaseGraph: !(retainGraph ?? createGraph), onlyTowards: Set(ids))
    return ids.map { grads[$0] }
}

/// The vector-Jacobian product of a composite function, computed by recording `f` on `inputs`
/// and differentiating it with a graph. Fused ops (batch norm) use this as their backward when
/// a second derivative is wanted, so the fast kernel and the differentiable rule agree by
/// construction of the same formula.
func vjpByRecompute(_ inputs: [Tensor], _ g: Tensor, _ f: ([Tensor]) -> Tensor) -> [Tensor?] {
    let y = GradMode.with(true) { f(inputs) }
    let ids = inputs.map { ObjectIdentifier($0) }
    let grads = propagate(root: y, seed: g, stops: Set(ids), keep: Set(ids), createGraph: true, releaseGraph: false)
    return ids.map { grads[$0] }
}
