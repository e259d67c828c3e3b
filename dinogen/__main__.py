from dinogen.cli import main

main(prog_name="dinogen")
