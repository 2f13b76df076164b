"""Test ordering for `make test` (two files at a time with pytest-xdist, --dist loadfile): the
end-to-end files, which take minutes each, are handed out first and the many short unit files
fill the gaps at the end, instead of a long file starting last on one worker while the other
sits idle (xdist's default order, by number of tests per file, puts the e2e files last)."""


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: file order kept otherwise
