from dcsft.cli import app

app(prog_name="dcsft")
