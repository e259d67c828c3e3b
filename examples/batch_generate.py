"""Write 1,000 new, distinct dinosaur names at each of three temperatures to one CSV file.

Run after `dinogen train`:  python examples/batch_generate.py checkpoints/default names.csv
"""

import csv
import sys

from dinogen import Generator

checkpoint = sys.argv[1] if len(sys.argv) > 1 else "checkpoints/default"
output = sys.argv[2] if len(sys.argv) > 2 else "names.csv"

generator = Generator.from_checkpoint(checkpoint, device="auto")
with open(output, "w", newline="", encoding="utf-8") as file:
    writer = csv.writer(file)
    writer.writerow(["temperature", "name", "log_prob", "nll_per_char"])
    for temperature in (0.6, 0.8, 1.0):
        # unique: no repeats within a temperature; novel: none of the training names
        for scored in generator.iter_sample(1000, temperature=temperature, unique=True, novel=True, seed=0):
            writer.writerow([temperature, scored.name, f"{scored.log_prob:.4f}", f"{scored.nll_per_char:.4f}"])
print(f"wrote {output}")
