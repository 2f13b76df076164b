from dcsft.cli import app

if __name__ == "__main__":  # worker processes (dcsft.workers) import this module without running the command
    app(prog_name="dcsft")
