import ArgumentParser

/// The `mesh` command: run, inspect and try StateMesh nodes.
@main
struct Mesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh",
        abstract: "StateMesh: a leaderless, causally consistent mesh of CRDTs over encrypted gossip.",
        discussion: """
            Start with `mesh demo`: it runs a few nodes on this machine, partitions one, heals, and shows
            them converge. Then create keys with `mesh keygen`, write a configuration file (see the
            README's configuration reference) and run `mesh node --config FILE`.
            """,
        subcommands: [Demo.self, Keygen.self, Node.self, Status.self]
    )
}
