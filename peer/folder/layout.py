"""What napshare keeps inside a shared or download folder, by name: one home for these names."""

STATE_DIR = ".napshare"  # napshare's own files; never shared
HASHES_FILE = "hashes.json"  # in STATE_DIR: the cached sha256 of each shared file
PARTIAL_DIR = "partial"  # in STATE_DIR: one note per unfinished download
PART_SUFFIX = ".part"  # `<name>.part`: the bytes of an unfinished download of `<name>`
