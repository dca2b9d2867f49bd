# expect: FileNotFoundError
import matplotlib.pyplot as plt
pixels = plt.imread("@CANARY@")
plt.imshow(pixels)
