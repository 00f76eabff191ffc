// SPDX-License-Identifier: Apache-2.0
pragma solidity >=0.8.20 <0.9.0;

/// @title RootRegistry
/// @notice A public, append-only notice board for 32-byte digests (Merkle roots).
/// Anyone may anchor any root; the contract keeps no owner, holds no funds and cannot be
/// upgraded or paused. An anchor proves only that the root was known to the sender when
/// the block holding the transaction was produced.
contract RootRegistry {
    /// @notice Emitted by every call to `anchor`, also when the root was anchored before.
    /// @param root the anchored 32-byte digest
    /// @param sender the account that sent the transaction
    /// @param timestamp the block time of the anchoring block, in seconds since the epoch
    event Anchored(bytes32 indexed root, address indexed sender, uint256 timestamp);

    mapping(bytes32 => uint256) private firstAnchored;

    /// @notice Record `root`; the first call for a root fixes its anchoring time.
    function anchor(bytes32 root) external {
        if (firstAnchored[root] == 0) {
            firstAnchored[root] = block.timestamp;
        }
        emit Anchored(root, msg.sender, block.timestamp);
    }

    /// @notice Return the block time (seconds) at which `root` was first anchored, or 0.
    function anchoredAt(bytes32 root) external view returns (uint256) {
        return firstAnchored[root];
    }
}
