"""Run the trained SID U-Net on the Fuji X-T2 test pairs: test_Sony.py with the Fuji profile.

Same outputs, names, flags, tiling, stamps and skip rules as test_Sony.py; each X-Trans raw is
cropped to multiples of 6 (4032 x 6030 of the X-T2's 4032 x 6032), packed into 9 channels at a
third of the resolution and run whole or in tiles (--tile in packed pixels, 3x in output pixels);
the ground truth and the baseline are cropped to the output. Defaults: ./Fuji_test_list.txt,
./checkpoint/Fuji/, ./result_Fuji/.

    python3 test_Fuji.py
"""
import camera
import cli
import test_Sony

define_flags = camera.flags_of(test_Sony, camera.FUJI)


if __name__ == '__main__':
    cli.run(test_Sony.main, define_flags)
