import CMPI
import Foundation
import Tensor

/// The processes of this job: MPI's world when a launcher started it (mpirun, or Slurm's srun),
/// otherwise one process. MPI is initialised only then, so a plain `maclr` never touches it.
public enum Cluster {
    /// Variables OpenMPI's mpirun and PMIx launchers (srun --mpi=pmix) give each rank.
    static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]

    public static let world: Collective = {
        let env = ProcessInfo.processInfo.environment
        guard launcherVariables.contains(where: { env[$0] != nil }) else { return SingleProcess() }
        return MPIWorld()
    }()

    /// Ends every process of the job with `status` (one failing rank must not leave the others
    /// waiting in a collective); a plain exit in one process.
    public static func abort(_ status: Int32) -> Never {
        if world is MPIWorld { MPI_Abort(maclr_MPI_COMM_WORLD(), status) }
        exit(status)
    }
}

/// MPI_COMM_WORLD; collectives are blocking, called by every rank in the same order.
final class MPIWorld: Collective {
    let rank: Int, size: Int

    init() {
        var provided: Int32 = 0
        // one thread calls MPI (the training loop); the engine's threads never do
        MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(maclr_MPI_COMM_WORLD(), &r)
        MPI_Comm_size(maclr_MPI_COMM_WORLD(), &s)
        rank = Int(r); size = Int(s)
        atexit { MPI_Finalize() }
    }

    func sumInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) { sum(values, count: count, type: maclr_MPI_FLOAT()) }
    func sumInPlace(_ values: UnsafeMutablePointer<Double>, count: Int) { sum(values, count: count, type: maclr_MPI_DOUBLE()) }

    func sum<T>(_ values: UnsafeMutablePointer<T>, count: Int, type: MPI_Datatype) {
        // MPI counts are Int32: large buffers go in pieces
        var done = 0
        while done < count {
            let n = min(count - done, Int(Int32.max))
            MPI_Allreduce(maclr_MPI_IN_PLACE(), values + done, Int32(n), type, maclr_MPI_SUM(), maclr_MPI_COMM_WORLD())
            done += n
        }
    }

    func gatherRows(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitialized: [x.shape[0] * size] + x.shape.dropFirst())
        precondition(x.count <= Int(Int32.max), "gatherRows: \(x.count) values exceed one MPI message")
        MPI_Allgather(x.data, Int32(x.count), maclr_MPI_FLOAT(), out.data, Int32(x.count), maclr_MPI_FLOAT(), maclr_MPI_COMM_WORLD())
        return out
    }

    func gather(_ value: UInt64) -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        MPI_Allgather(&mine, 1, maclr_MPI_UINT64_T(), &all, 1, maclr_MPI_UINT64_T(), maclr_MPI_COMM_WORLD())
        return all
    }
}
