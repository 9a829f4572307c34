"""Train the SID U-Net on the Fuji X-T2 set: train_Sony.py with the Fuji profile (camera.FUJI).

Same recipe, flags, cache, resume, validation, distribution and precision as train_Sony.py; the
X-Trans raws are cropped to multiples of 6 and packed into 9 channels at a third of the
resolution, the network ends in depth_to_space(3), and each 512 x 512 packed crop is paired with
the 1536 x 1536 ground truth at 3x its offset. Defaults: ./Fuji_train_list.txt,
./checkpoint/Fuji/, ./result_Fuji/.

    python3 train_Fuji.py --epochs=N
"""
import camera
import cli
import train_Sony

define_flags = camera.flags_of(train_Sony, camera.FUJI)


if __name__ == '__main__':
    cli.run(train_Sony.main, define_flags)
