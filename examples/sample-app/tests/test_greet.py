from sample_app import greet


def test_greets_by_name():
    assert greet("Ada").endswith("Ada!")


def test_greets_anyone():
    assert "world" in greet("world")


def test_escapes_markup():
    assert "<script>" not in greet("<script>")
