# expect: FileNotFoundError
from PIL import Image
image = Image.open("@CANARY@")
