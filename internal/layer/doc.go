//go:build linux

// Package layer converts between directory trees and OCI image layers
// (uncompressed tar streams), for pib's layer cache and its overlayfs build
// sandbox: Unpack turns a layer into an overlayfs lower directory, Pack turns
// an overlayfs upper directory back into a layer, and Check validates a layer
// without writing anything.
//
// # Safety rules (Unpack and Check)
//
// Layers come from users, so every entry is checked before anything is
// created, against a model of the tree built from the entries before it. Because
// Unpack starts from an empty directory, every symlink under it came from the
// same stream, and the model decides exactly what the file system would do:
//
//   - names: a leading "./" is stripped and the name cleaned lexically; "." is
//     the root and skipped; an absolute name, or one that cleans to ".." or
//     "../…", is refused; a trailing "/" is allowed only on directories;
//   - no entry may be created through a symlink of the layer ("a" → "/etc"
//     followed by "a/passwd"), nor below a non-directory;
//   - a hard link must name, by a relative path under the root that does not
//     pass through a symlink, an earlier non-directory entry of the same layer;
//   - a later entry replaces an earlier non-directory at the same path (as
//     docker does) and updates an earlier directory; replacing a directory
//     with a non-directory is refused rather than deleting a subtree;
//   - only regular files, hard links, symlinks, directories, character and
//     block devices and fifos are supported; GNU sparse files (the old
//     type and the PAX GNU.sparse.* form, whose holes would be written out
//     in full), contiguous files and other types are refused;
//   - device nodes and fifos are accepted but never created on the host
//     (rule T2): Unpack writes a whiteout in their place (see Unpack);
//   - xattrs must be in the user (regular files and directories only, as the
//     kernel demands), trusted or security namespaces or POSIX ACLs; overlay
//     xattrs (trusted.overlay.*, user.overlay.*) in a layer are dropped, so a
//     layer cannot steer the overlay mount except through OCI whiteouts;
//   - a truncated stream is refused, including one cut exactly between two
//     entries (the end-of-archive zero block is required) — so is garbage.
//
// A refusal is an *EntryError naming the entry. On top of the model, Unpack
// resolves every parent directory with openat2(RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS) (falling back to an O_NOFOLLOW walk where openat2 is
// missing) and creates entries relative to that descriptor, so no symlink is
// ever followed even if the model were wrong.
//
// # Whiteouts
//
// OCI ".wh.<name>" entries become overlayfs whiteouts (character device 0:0)
// and "<dir>/.wh..wh..opq" becomes trusted.overlay.opaque="y" and
// user.overlay.opaque="y" (the build sandbox mounts its overlay inside a
// user namespace, where only user.* xattrs count); Pack does the
// reverse. A whiteout for a path this same layer also creates is dropped (the
// entry shadows the lower layers anyway); a directory that replaces a
// whiteout of the same layer is made opaque, since in OCI terms it was
// deleted and created anew. AUFS metadata (".wh..wh.*") is ignored.
//
// # Reproducible layers
//
// Pack's output depends only on the tree's names, contents, modes, owners,
// xattrs, links and modification times; PackOptions.Clamp limits the
// times, so that two runs of an installer whose output is deterministic
// give the same layer byte for byte. Diff says what differs between two
// layers when they are not the same (it reads them as Check does).
//
// # Limits
//
//   - Unpack and Pack need root (or CAP_MKNOD, CAP_CHOWN, CAP_FOWNER,
//     CAP_SYS_ADMIN for trusted.* xattrs); there is no rootless mode with
//     user.overlay.* xattrs on Unpack yet.
//   - Hard links into a lower layer are not supported: a layer is unpacked
//     into its own directory and overlayfs cannot link across layers, so a
//     hard link must target an entry of the same tar. Docker and containerd
//     apply layers onto one merged tree and can accept such links; pib refuses
//     them.
//   - A whiteout followed by entries below the same name without a directory
//     entry for it (".wh.a", then "a/x") is refused: Unpack would have to turn
//     the whiteout into a directory silently.
//   - Pack requires an upper directory written with redirect_dir=off and
//     metacopy=off: with either on, the upper directory is not a complete
//     layer by itself. Whiteout entries it writes carry no metadata.
//   - Sparse files are packed with their holes filled; Unpack writes them in
//     full. Pack refuses a tree with device nodes (whiteouts aside), fifos
//     or sockets with a *SpecialFilesError listing them (T2), so an image
//     made by Pack never has them and a build that leaves one has no layer. Directories Unpack creates because
//     the stream lacks them are 0755 root:root with the current time as mtime.
//   - Pack reads the tree as it is; nothing may write to it meanwhile.
//   - Unpack reads r through a buffer and may consume bytes past the end of
//     the archive; it does not drain r.
package layer
