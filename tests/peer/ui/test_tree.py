"""The tree `browse` draws: each folder once, before its files, whatever the pages' cuts."""

from napshare.peer.ui.tree import TreeLines

FILES = [
    ("a-b/c", 1),
    ("a.txt", 2),
    ("a/b.txt", 3),
    ("a/c/d.txt", 4),
    ("a/c/e/f.txt", 5),
    ("a/g.txt", 6),
    ("a0/h", 7),
    ("top", 2048),
]
DRAWN = [
    "a-b/",
    "  c  1 B",
    "a.txt  2 B",
    "a/",
    "  b.txt  3 B",
    "  c/",
    "    d.txt  4 B",
    "    e/",
    "      f.txt  5 B",
    "  g.txt  6 B",
    "a0/",
    "  h  7 B",
    "top  2.0 KiB",
]


def test_every_folder_is_drawn_once_before_its_files() -> None:
    tree = TreeLines()

    assert list(tree.feed(FILES)) == DRAWN
    assert (tree.files, tree.size, tree.folders) == (8, 2076, 5)


def test_pages_cut_anywhere_draw_the_same_tree() -> None:
    for cut in range(len(FILES) + 1):
        tree = TreeLines()
        assert [*tree.feed(FILES[:cut]), *tree.feed(FILES[cut:])] == DRAWN
